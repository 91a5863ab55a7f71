"""Package layout: ops <- layers <- models, no import cycles, no mmengine below the backbones."""
import ast
import os.path as osp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / 'gfnet_dense'
LAYERS = ('ops', 'layers', 'models')  # each may import only those before it
OPENMMLAB = ('mmengine', 'mmcv', 'mmseg', 'mmdet')


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def top_level_imports(path: Path):
    """Modules ``path`` imports at module level (function-level imports are lazy)."""
    name = module_name(path)
    package = name if path.name == '__init__.py' else name.rsplit('.', 1)[0]
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit('.', node.level - 1)[0] if node.level else ''
            target = '.'.join(p for p in (base, node.module) if p)
            for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                sub = f'{target}.{alias.name}'
                yield sub if (ROOT / sub.replace('.', '/')).with_suffix('.py').exists() \
                    or (ROOT / sub.replace('.', '/') / '__init__.py').exists() else target


def import_graph():
    """Every module of the package -> the package modules it imports at module level."""
    return {module_name(p): set(top_level_imports(p)) for p in PACKAGE.rglob('*.py')}


def _own(imported):
    return {m for m in imported if m.startswith('gfnet_dense.')}


def test_layers_import_only_downwards():
    for module, imported in import_graph().items():
        if module.count('.') < 2 or module.split('.')[1] not in LAYERS:
            continue
        layer = LAYERS.index(module.split('.')[1])
        for target in _own(imported):
            parts = target.split('.')
            if len(parts) > 1 and parts[1] in LAYERS:
                assert LAYERS.index(parts[1]) <= layer, f'{module} imports {target}'


def test_only_mm_imports_openmmlab():
    for module, imported in import_graph().items():
        if module.startswith('gfnet_dense.mm'):
            continue
        foreign = {m for m in imported if m.split('.')[0] in OPENMMLAB}
        assert not foreign, f'{module} imports {foreign}: OpenMMLab code belongs in gfnet_dense.mm'
        inward = {m for m in _own(imported) if m.startswith('gfnet_dense.mm')}
        assert module == 'gfnet_dense' or not inward, f'{module} imports {inward}'


def test_no_import_cycles():
    graph = {k: _own(v) for k, v in import_graph().items()}
    state = {}

    def visit(node, path):
        if state.get(node) == 'open':
            raise AssertionError('import cycle: ' + ' -> '.join(path + [node]))
        if state.get(node) == 'done' or node not in graph:
            return
        state[node] = 'open'
        for target in sorted(graph[node]):
            visit(target, path + [node])
        state[node] = 'done'

    for node in sorted(graph):
        visit(node, [])


def test_package_imports_without_mmengine():
    """``import gfnet_dense`` needs torch and timm only (OpenMMLab blocked here)."""
    code = '''
import importlib.abc, sys

class BlockOpenMMLab(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmengine', 'mmcv', 'mmseg', 'mmdet'):
            raise ImportError(f'{name} is blocked')

sys.meta_path.insert(0, BlockOpenMMLab())
import gfnet_dense
import timm, torch
model = timm.create_model('gfnet_h_ti', features_only=True, depths=(1, 1, 1, 1))
assert len(model(torch.randn(1, 3, 64, 96))) == 4
assert not hasattr(gfnet_dense, 'GFNetH') and 'gfnet_dense.mm' not in sys.modules
print('ok')
'''
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith('ok'), proc.stderr[-3000:]
