"""timm's own model test suite on our models, as a contributor of a model family runs it.

``tests/test_models.py`` of the pinned timm's source distribution (PyPI; cached
under ``$GFNET_DENSE_CACHE/timm-sdist``, default ``~/.cache/gfnet_dense``, so later
runs are offline) runs in pytest subprocesses after ``import gfnet_dense``, with our
model modules added to its ``FEAT_INTER_FILTERS`` and its model lists restricted to
our models. Every selected test must pass, except those in ``EXCLUDED`` (with the
reason). Nothing of the sdist is kept in the repository.

To run timm's suite by hand on some models: write it out with ``extract_suite`` and
run ``GFNET_TIMM_SUITE_MODELS=gfnet_ti,affnet_et pytest test_models.py`` there.
"""
import ast
import os
import re
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import timm

from gfnet_dense.datasets import cache_dir

pytestmark = pytest.mark.needs_registry

REPO = Path(__file__).resolve().parents[2]
#: our timm model modules (``timm.list_models(module=...)``)
OUR_MODULES = ('gfnet', 'affnet')
#: the test functions of the pinned timm's test_models.py parametrized over our models
TIMM_TESTS = (
    'test_model_forward', 'test_model_backward', 'test_model_default_cfgs',
    'test_model_forward_torchscript', 'test_model_forward_features',
    'test_model_forward_intermediates_features', 'test_model_forward_intermediates',
    'test_prune_intermediate_layers_contract', 'test_model_forward_fx',
    'test_model_backward_fx', 'test_model_forward_fx_torchscript',
)
_TORCHSCRIPT = (
    'TorchScript (deprecated in torch 2.11: "Please switch to torch.compile or '
    'torch.export") would need a second, scriptable copy of the plain formulation: the '
    'filter and pos_embed resizes (cached interpolation matrices), the eval caches, the '
    'float32 FFT islands (autocast contexts), checkpointed block loops, the input check, '
    "and for AFFNet its conv+BN modules, GroupNorm's super().forward and the filter's "
    'callable mask. torch.compile and torch.export (the ONNX export) are supported and '
    'tested instead')
#: timm tests not run on our models, for every one of them, with the reason
EXCLUDED = {
    'test_model_forward_torchscript': _TORCHSCRIPT,
    'test_model_forward_fx_torchscript': 'scripts the FX graph: ' + _TORCHSCRIPT,
}
#: subprocesses the models are shared out to, each single-threaded: timm's inputs
#: are small (96-224 px), where intra-op threads cost more than they save
WORKERS = max(1, min(4, os.cpu_count() or 1))
SUBPROCESS_TIMEOUT_S = 900

CONFTEST = '''\
"""Written by gfnet-dense's tests/unit/test_timm_suite.py: our models in timm's suite."""
import os

import gfnet_dense  # registers our models before test_models.py is collected
import timm

OURS = set(os.environ['GFNET_TIMM_SUITE_MODELS'].split(','))
EXCLUDED = {excluded!r}
_list_models = timm.list_models


def list_our_models(*args, **kwargs):
    """``timm.list_models`` restricted to our models: test_models.py parametrizes its
    tests with it when imported, so no test of another model is even collected."""
    return [name for name in _list_models(*args, **kwargs) if name.split('.')[0] in OURS]


timm.list_models = list_our_models


def _ours(item):
    name = getattr(item, 'callspec', None) and item.callspec.params.get('model_name')
    return isinstance(name, str) and name.split('.')[0] in OURS  # 'gfnet_ti.in1k' too


def pytest_collection_modifyitems(config, items):
    keep = [i for i in items if _ours(i) and i.originalname not in EXCLUDED]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep
'''


def pinned_timm_version() -> str:
    found = re.findall(r"'timm==([^']+)'", (REPO / 'setup.py').read_text())
    assert len(found) == 1, f'setup.py pins timm {len(found)} times: {found}'
    return found[0]


def timm_sdist(version: str) -> Path:
    """The sdist of timm ``version``: cached, else fetched with pip (fails naming why)."""
    folder = cache_dir() / 'timm-sdist'
    path = folder / f'timm-{version}.tar.gz'
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--no-binary', ':all:',
           f'timm=={version}', '-d', str(folder)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f'`{" ".join(cmd)}` timed out after 300 s: timm\'s test suite needs '
                    f'the sdist from PyPI (or put timm-{version}.tar.gz into {folder})')
    if proc.returncode or not path.is_file():
        tail = ' / '.join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        pytest.fail(f'could not fetch the timm {version} sdist from PyPI (`{" ".join(cmd)}`: '
                    f'{tail}); put timm-{version}.tar.gz into {folder} to run offline')
    return path


def with_our_modules(source: str) -> str:
    """``source`` with ``FEAT_INTER_FILTERS += [our modules]`` right after its definition,
    as a contributor of a model family adds theirs."""
    assigned = [node for node in ast.parse(source).body if isinstance(node, ast.Assign)
                and any(getattr(t, 'id', None) == 'FEAT_INTER_FILTERS' for t in node.targets)]
    assert len(assigned) == 1, 'timm\'s test_models.py no longer assigns FEAT_INTER_FILTERS once'
    lines = source.splitlines(keepends=True)
    lines.insert(assigned[0].end_lineno, f'FEAT_INTER_FILTERS += {list(OUR_MODULES)!r}\n')
    return ''.join(lines)


def extract_suite(sdist: Path, version: str, dest: Path) -> Path:
    """``tests/test_models.py`` of the sdist, patched, beside our conftest.py. It imports
    nothing else from timm's tests folder (checked)."""
    with tarfile.open(sdist) as tar:
        source = tar.extractfile(f'timm-{version}/tests/test_models.py').read().decode()
    local = [n for n in ast.walk(ast.parse(source))
             if isinstance(n, ast.ImportFrom) and (n.level or (n.module or '').startswith('tests'))]
    assert not local, 'timm\'s test_models.py now imports from its tests folder: extract those too'
    (dest / 'test_models.py').write_text(with_our_modules(source))
    (dest / 'conftest.py').write_text(CONFTEST.format(excluded=sorted(EXCLUDED)))
    return dest / 'test_models.py'


def shares(models: List[str], workers: int) -> List[List[str]]:
    """``models`` shared out by size (parameters, counted on the meta device), largest
    first in snake order (0, 1, 1, 0, ...): the costly ones spread over the workers."""
    size = {name: sum(p.numel() for p in timm.create_model(name, device='meta').parameters())
            for name in models}
    out: List[List[str]] = [[] for _ in range(workers)]
    for i, name in enumerate(sorted(models, key=size.get, reverse=True)):
        turn, position = divmod(i, workers)
        out[position if turn % 2 == 0 else workers - 1 - position].append(name)
    return [share for share in out if share]


def results(junit: Path) -> Dict[str, Tuple[str, str]]:
    """``{test id: (outcome, message)}`` from a junit XML report."""
    out = {}
    for case in ET.parse(junit).getroot().iter('testcase'):
        outcome, message = 'passed', ''
        for kind in ('failure', 'error', 'skipped'):
            node = case.find(kind)
            if node is not None:
                outcome, message = kind, (node.get('message') or '').splitlines()[0][:300]
                break
        out[case.get('name')] = (outcome, message)
    return out


def run_suite(suite: Path, models: List[str]) -> Dict[str, Tuple[str, str]]:
    """timm's suite on ``models``, shared out to ``WORKERS`` pytest subprocesses."""
    folder = suite.parent
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), os.environ.get('PYTHONPATH')])))
    env.pop('GITHUB_ACTIONS', None)  # it changes timm's test selection (fewer tests)
    runs = []
    for k, share in enumerate(shares(models, WORKERS)):
        junit, log = folder / f'results{k}.xml', open(folder / f'log{k}.txt', 'w')
        cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
               '-W', 'ignore::pytest.PytestUnknownMarkWarning', '--rootdir', str(folder),
               f'--junitxml={junit}', str(suite)]
        proc = subprocess.Popen(cmd, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(env, GFNET_TIMM_SUITE_MODELS=','.join(share)))
        runs.append((proc, junit, log))
    outcomes = {}
    for proc, junit, log in runs:
        try:
            proc.wait(timeout=SUBPROCESS_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
        assert junit.is_file(), f'timm\'s suite did not run:\n{Path(log.name).read_text()[-3000:]}'
        outcomes.update(results(junit))
    return outcomes


def test_timm_model_suite(tmp_path):
    version = pinned_timm_version()
    assert timm.__version__ == version, (
        f'timm {timm.__version__} is installed, setup.py pins {version}: run tools/setup_env.sh')
    ours = timm.list_models(module=list(OUR_MODULES))
    assert ours, 'none of our models is registered with timm'
    outcomes = run_suite(extract_suite(timm_sdist(version), version, tmp_path), ours)

    assert not {name.split('[')[0] for name in outcomes} & set(EXCLUDED), 'excluded tests ran'
    for test in set(TIMM_TESTS) - set(EXCLUDED):
        params = [name[name.index('['):] for name in outcomes if name.split('[')[0] == test]
        missing = [m for m in ours
                   if not any(re.search(rf'[\[-]{re.escape(m)}(\.in1k)?]', p) for p in params)]
        assert not missing, f'{test} did not run for {missing}'
    failed = {name: r for name, r in outcomes.items() if r[0] != 'passed'}
    assert not failed, '\n'.join(f'{name}: {outcome}: {message}'
                                 for name, (outcome, message) in sorted(failed.items()))
