"""The documentation stays true: README.md and every docs/*.md page.

* every relative Markdown link and image resolves to a file or folder of the
  repository, and an anchor into a Markdown page names one of its headings (as
  GitHub derives them); external links are not fetched;
* every repository path named (``tools/...``, ``configs/...``, ``gfnet_dense/...``,
  ``tests/...``, ``requirements/...``, and config names such as
  ``upernet_gfnet_h_{ti,s,b}_ade20k.py``) exists;
* ``--help`` exits 0 for every ``python tools/X.py`` named: all in one interpreter
  (``runpy``), so the imports are paid once;
* the ``make`` targets named exist, and the README stays short.
"""
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / 'docs'
PAGES = ['getting_started', 'install_gpu', 'backbones', 'checkpoints', 'segmentation',
         'detection', 'pretraining', 'deployment', 'performance', 'benchmarks',
         'proving_ground', 'conformance', 'design', 'development_log', 'README']
README_MAX_LINES = 150

FENCE = re.compile(r'^ {0,3}(```|~~~)')
LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
PATH = re.compile(r'(?<![\w/.$~-])((?:tools|configs|gfnet_dense|tests|requirements)/'
                  r'[\w./*{},-]*[\w*}/])')
CONFIG_NAME = re.compile(r'`((?:demo/)?[\w{},]+_(?:ade20k|coco)(?:_demo)?\.py'
                         r'|(?:demo|proving_ground)/[\w*{},]+\.py)`')
TOOL_COMMAND = re.compile(r'(?:^|[\s`(])(?:[\w./-]*/)?python3?\s+(tools/[\w-]+\.py)\b')
MAKE = re.compile(r'(?:^|`)make ([a-z][\w-]*)', re.M)


def documents() -> List[Path]:
    return [ROOT / 'README.md'] + sorted(DOCS.glob('*.md'))


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def split_code(text: str):
    """``(prose lines, code lines)`` of a Markdown text: fenced blocks are code."""
    prose, code, fenced = [], [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        (code if fenced else prose).append(line)
    return prose, code


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # links: their text
    text = re.sub(r'[`*]|<[^>]+>', '', text).strip().lower()
    return re.sub(r'[^\w\- ]', '', text).replace(' ', '-')


def anchors(page: Path) -> Set[str]:
    prose, _ = split_code(page.read_text(encoding='utf-8'))
    seen: Dict[str, int] = {}
    out = set()
    for line in prose:
        match = re.match(r'^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$', line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f'{base}-{count}')
    return out


def expand_braces(pattern: str) -> Iterator[str]:
    """``a_{x,y}_b`` -> ``a_x_b``, ``a_y_b`` (several groups combine)."""
    parts = re.split(r'\{([^{}]*)\}', pattern)
    choices = [[p] if i % 2 == 0 else p.split(',') for i, p in enumerate(parts)]
    for combo in itertools.product(*choices):
        yield ''.join(combo)


def exists(relative: str, base: Path = ROOT) -> bool:
    for path in expand_braces(relative.rstrip('/')):
        if '*' in path:
            if not list(base.glob(path)):
                return False
        elif not (base / path).exists():
            return False
    return True


@pytest.mark.parametrize('page', PAGES)
def test_page_exists(page):
    assert (DOCS / f'{page}.md').is_file(), f'docs/{page}.md is missing'


def test_readme_is_short():
    lines = (ROOT / 'README.md').read_text(encoding='utf-8').count('\n')
    assert lines <= README_MAX_LINES, f'README.md has {lines} lines (at most {README_MAX_LINES})'


def test_no_page_points_to_removed_files():
    assert not (ROOT / 'BENCHMARKS.md').exists(), 'the results live in docs/benchmarks.md'
    for doc in documents():
        assert 'BENCHMARKS.md' not in doc.read_text(encoding='utf-8'), doc


@pytest.mark.parametrize('doc', documents(), ids=_ids(documents()))
def test_relative_links_resolve(doc):
    prose, _ = split_code(doc.read_text(encoding='utf-8'))
    broken = []
    for target in LINK.findall('\n'.join(prose)):
        if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition('#')
        resolved = (doc.parent / path).resolve() if path else doc
        if not resolved.exists():
            broken.append(f'{target}: no such file')
        elif not resolved.is_relative_to(ROOT):
            broken.append(f'{target}: outside the repository')
        elif anchor and resolved.suffix == '.md' and anchor not in anchors(resolved):
            broken.append(f'{target}: no heading #{anchor} in {resolved.relative_to(ROOT)}')
    assert not broken, broken


@pytest.mark.parametrize('doc', documents(), ids=_ids(documents()))
def test_named_paths_exist(doc):
    text = doc.read_text(encoding='utf-8')
    missing = sorted({p for p in PATH.findall(text) if not exists(p)})
    missing += sorted({f'configs/{c}' for c in CONFIG_NAME.findall(text)
                       if not exists(c, ROOT / 'configs')})
    assert not missing, f'{doc.relative_to(ROOT)} names paths that do not exist: {missing}'


def test_make_targets_exist():
    makefile = (ROOT / 'Makefile').read_text()
    targets = set(re.findall(r'^([\w-]+):', makefile, re.M))
    named = {t for doc in documents() for t in MAKE.findall(doc.read_text(encoding='utf-8'))}
    assert {'demo', 'test'} <= named
    assert named <= targets, f'make targets named but not in the Makefile: {named - targets}'
    # the marker expression the docs give for `make test-fast` is the Makefile's
    fast = re.search(r'make test-fast.*?-m "([^"]+)"',
                     (DOCS / 'getting_started.md').read_text(encoding='utf-8'))
    assert fast and f'-m "{fast.group(1)}"' in makefile


HELP_RUNNER = r'''
import contextlib, io, json, os, runpy, sys
results = {}
for tool in sys.argv[1:]:
    saved_path, saved_argv = list(sys.path), sys.argv
    sys.path.insert(0, os.path.dirname(os.path.abspath(tool)))  # as `python tools/X.py`
    sys.argv = [tool, '--help']
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            runpy.run_path(tool, run_name='__main__')
        code = 'ended without exiting'
    except SystemExit as e:
        code = e.code or 0
    except BaseException as e:  # an import error, ...
        code = f'{type(e).__name__}: {e}'
    finally:
        sys.path[:], sys.argv = saved_path, saved_argv
    text = out.getvalue()
    results[tool] = [code, 'usage:' in text, text[-400:]]
print('RESULTS ' + json.dumps(results, default=str))
'''


def test_tools_show_help_from_any_folder(tmp_path):
    """Every tool the docs name, and every other command-line tool, answers ``--help``
    from another folder (package installed, no sys.path edits in the tools) and writes
    nothing there."""
    named = {t for doc in documents()
             for t in TOOL_COMMAND.findall(doc.read_text(encoding='utf-8'))}
    assert 'tools/demo.py' in named and 'tools/export_onnx.py' in named, named
    missing = [t for t in named if not (ROOT / t).is_file()]
    assert not missing, missing
    # modules the tools import (report writers, the proving ground's engine) have no CLI
    every = {f'tools/{p.name}' for p in (ROOT / 'tools').glob('*.py')
             if "__name__ == '__main__'" in p.read_text()}
    assert len(every) >= 13, every
    tools = [str(ROOT / t) for t in sorted(named | every)]
    proc = subprocess.run([sys.executable, '-c', HELP_RUNNER, *tools], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULTS ')]
    assert lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads(lines[-1][len('RESULTS '):])
    assert len(results) == len(tools)
    failed = {tool: r for tool, r in results.items() if r[0] != 0 or not r[1]}
    assert not failed, json.dumps(failed, indent=1)
    assert list(tmp_path.iterdir()) == [], 'a tool wrote into the working folder'
