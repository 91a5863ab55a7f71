"""Every checkpoint read goes through ``gfnet_dense/checkpoints/reading.py``: no other
module of the package or its tools calls ``torch.load``, ``pickle.load`` or a
safetensors reader (writing safetensors is fine)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
READER = ROOT / 'gfnet_dense' / 'checkpoints' / 'reading.py'
FORBIDDEN_CALLS = {'torch.load', 'torch.serialization.load', 'pickle.load', 'pickle.loads',
                   'pickle.Unpickler', 'safe_open', 'safetensors.safe_open'}
SAFETENSORS_WRITERS = {'save_file', 'save', 'save_model'}


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return '.'.join(reversed(parts))


def readers_in(path: Path, root: Path = ROOT):
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _dotted(node.func) in FORBIDDEN_CALLS:
            found.append(f'{path.relative_to(root)}:{node.lineno} {_dotted(node.func)}')
        if isinstance(node, ast.ImportFrom) and (node.module or '').startswith('safetensors'):
            names = {a.name for a in node.names} - SAFETENSORS_WRITERS
            if names:
                found.append(f'{path.relative_to(root)}:{node.lineno} safetensors {names}')
        if isinstance(node, ast.Import) and any(a.name.startswith('safetensors')
                                                for a in node.names):
            found.append(f'{path.relative_to(root)}:{node.lineno} import safetensors')
    return found


def test_only_the_reader_reads_checkpoints():
    files = sorted((ROOT / 'gfnet_dense').rglob('*.py')) + sorted((ROOT / 'tools').rglob('*.py'))
    assert len(files) > 20
    found = [hit for path in files if path != READER for hit in readers_in(path)]
    assert not found, 'checkpoint reads outside gfnet_dense/checkpoints/reading.py:\n' + \
        '\n'.join(found)


def test_the_scan_sees_a_reader(tmp_path):
    """The scan itself finds a torch.load call and a safetensors reader."""
    probe = tmp_path / 'probe.py'
    probe.write_text('import torch\nfrom safetensors.torch import load_file, save_file\n'
                     'x = torch.load("f")\n')
    hits = readers_in(probe, tmp_path)
    assert len(hits) == 2 and 'torch.load' in hits[1] and "{'load_file'}" in hits[0]
