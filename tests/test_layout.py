"""Package layout: ops <- layers <- models, no import cycles, no mmengine below the backbones."""
import ast
import os.path as osp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'gfnet_dense'
LAYERS = ('ops', 'layers', 'models')  # each may import only those before it


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
    files = [p for layer in LAYERS for p in (PACKAGE / layer).glob('*.py')]
    files = [p for p in files if p.name != 'backbones.py']  # MMEngine's side, not the network's
    return {module_name(p): {m for m in top_level_imports(p) if m.startswith('gfnet_dense.')}
            for p in files}


def test_layers_import_only_downwards():
    for module, imported in import_graph().items():
        layer = LAYERS.index(module.split('.')[1])
        for target in imported:
            parts = target.split('.')
            if len(parts) > 1 and parts[1] in LAYERS:
                assert LAYERS.index(parts[1]) <= layer, f'{module} imports {target}'


def test_no_import_cycles():
    graph = import_graph()
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


def test_models_layers_and_ops_import_without_mmengine():
    code = f'''
import importlib.abc, sys, types

class BlockMMEngine(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'mmengine':
            raise ImportError('mmengine is blocked')

sys.meta_path.insert(0, BlockMMEngine())
# the top-level package imports the MMEngine hooks: stand in for it
package = types.ModuleType('gfnet_dense')
package.__path__ = [{str(PACKAGE)!r}]
sys.modules['gfnet_dense'] = package
import gfnet_dense.ops, gfnet_dense.layers, gfnet_dense.models
import timm, torch
model = timm.create_model('gfnet_h_ti', features_only=True, depths=(1, 1, 1, 1))
assert len(model(torch.randn(1, 3, 64, 96))) == 4
try:
    gfnet_dense.models.GFNetH
except ImportError as err:
    assert 'mmengine' in str(err)
else:
    raise AssertionError('the MMEngine backbones imported without mmengine')
print('ok')
'''
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          cwd=osp.dirname(str(ROOT)), timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith('ok'), proc.stderr[-3000:]
