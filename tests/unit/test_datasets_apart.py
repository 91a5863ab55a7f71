"""The data code (gfnet_dense.datasets: demo sets, registry downloads) stays apart from
the models: ``import gfnet_dense`` neither loads nor exports it, and no module of the
package finds files through the repository it was checked out in (a non-editable
install has none): writers take their folder, downloads go to the cache."""
import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / 'gfnet_dense'


def test_import_gfnet_dense_leaves_the_data_code_alone():
    code = '''
import sys
import gfnet_dense
loaded = sorted(m for m in sys.modules if m.startswith('gfnet_dense.datasets'))
assert not loaded, loaded
assert not any(m.startswith(('gfnet_dense.demo_data', 'gfnet_dense.real_data'))
               for m in sys.modules)
exported = [n for n in gfnet_dense.__all__ if 'demo' in n or 'data' in n.lower()]
assert not exported, exported
assert not hasattr(gfnet_dense, 'make_ade20k_demo') and not hasattr(gfnet_dense, 'datasets')
print('ok')
'''
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          cwd='/', timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith('ok'), proc.stderr[-3000:]


def test_only_tools_configs_and_tests_import_the_data_code():
    """No module of the package outside gfnet_dense.datasets imports it, lazily or not."""
    for path in PACKAGE.rglob('*.py'):
        if (PACKAGE / 'datasets') in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or '').startswith(
                    'gfnet_dense')):  # our own modules (torchvision.datasets is fine)
                names = [f'{node.module or ""}.{a.name}' for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith('gfnet_dense')]
            else:
                continue
            assert not any(re.search(r'(^|\.)(datasets|demo_data|real_data)(\.|$)', n)
                           for n in names), f'{path.relative_to(ROOT)} imports {names}'


def _walks_out(node) -> bool:
    """Path walks that can leave the package: ``__file__``, ``.parents[...]``,
    ``.parent.parent``, ``os.pardir`` and ``'..'`` joined into a path."""
    if isinstance(node, ast.Name) and node.id == '__file__':
        return True
    if isinstance(node, ast.Attribute):
        if node.attr in ('parents', 'pardir'):
            return True
        if node.attr == 'parent' and isinstance(node.value, ast.Attribute) \
                and node.value.attr == 'parent':
            return True
    is_dots = lambda n: isinstance(n, ast.Constant) and n.value in ('..', '../')  # noqa: E731
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) \
            and (is_dots(node.left) or is_dots(node.right)):
        return True
    if isinstance(node, ast.Call) and any(is_dots(a) for a in node.args):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, 'id', '')
        return name in ('join', 'joinpath', 'Path', 'PurePath', 'abspath', 'normpath',
                        'realpath', 'resolve')
    return False


def test_no_module_of_the_package_walks_to_the_repository():
    found = []
    for path in sorted(PACKAGE.rglob('*.py')):
        for node in ast.walk(ast.parse(path.read_text())):
            if _walks_out(node):
                found.append(f'{path.relative_to(ROOT)}:{node.lineno}')
    assert not found, f'paths relative to the source tree: {found}'


@pytest.mark.parametrize('source,walks', [
    ("ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))", True),
    ("ROOT = Path(__file__).resolve().parents[2]", True),
    ("ROOT = Path(x).parent.parent", True),
    ("ROOT = osp.join(here, '..', 'data')", True),
    ("ROOT = here / '..'", True),
    ("ROOT = osp.join(here, os.pardir)", True),
    ("ok = base in ('', '.', '..')", False),
    ("folder = cache_dir() / 'datasets'", False),
])
def test_the_walk_check_sees_the_usual_forms(source, walks):
    assert any(_walks_out(n) for n in ast.walk(ast.parse(source))) is walks


def test_writers_take_their_folder(tmp_path, monkeypatch):
    from gfnet_dense.datasets import aal, demo, fashion_mnist
    for fn in (demo.make_ade20k_demo, demo.make_brain_lobes_demo, aal.write_seg_dataset,
               fashion_mnist.write_imagefolder):
        first = next(iter(inspect.signature(fn).parameters.values()))
        assert first.default is inspect.Parameter.empty, f'{fn.__name__} has a default folder'
    monkeypatch.chdir(tmp_path)
    root = tmp_path / 'out' / 'ade'
    assert demo.make_ade20k_demo(str(root), num_train=2, num_val=1) == str(root)
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob('*')
                     if p.is_file())
    assert len(written) == 6 and all(w.startswith('out/ade/') for w in written), written


def test_downloads_go_to_the_cache(monkeypatch, tmp_path):
    from gfnet_dense.datasets import cache_dir
    monkeypatch.setenv('GFNET_DENSE_CACHE', str(tmp_path / 'cache'))
    assert cache_dir() == tmp_path / 'cache'
    monkeypatch.delenv('GFNET_DENSE_CACHE')
    assert cache_dir() == Path.home() / '.cache' / 'gfnet_dense'
