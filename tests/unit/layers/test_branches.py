"""A layer's forward branches: the plain one is torch.fft's, the export one ``onnx_fft``'s."""
import ast
from pathlib import Path

import pytest
import torch

from gfnet_dense.deploy import onnx_fft
from gfnet_dense.layers import AdaptiveFrequencyFilter, GlobalFilter, run_blocks
from gfnet_dense.ops import fast_path
from gfnet_dense.ops.config import onnx_export

ENTRY_POINTS = ('rfft2', 'irfft2', 'filter_spectrum')


def _count_onnx_calls(monkeypatch):
    calls = []
    for name in ENTRY_POINTS:
        real = getattr(onnx_fft, name)
        monkeypatch.setattr(onnx_fft, name,
                            lambda *a, _real=real, _name=name, **k: calls.append(_name)
                            or _real(*a, **k))
    return calls


@pytest.mark.parametrize('mode', ['bicubic', 'bilinear', 'spatial'])
def test_plain_branch_never_takes_the_onnx_forms(mode, monkeypatch):
    calls = _count_onnx_calls(monkeypatch)
    layer = GlobalFilter(4, (6, 6), resize_mode=mode)
    aff = AdaptiveFrequencyFilter(8, groups=2)
    with fast_path(False):
        for size in ((6, 6), (7, 9)):
            layer(torch.randn(2, *size, 4)).sum().backward()
        aff(torch.randn(1, 8, 7, 9)).sum().backward()
    assert calls == []


@pytest.mark.parametrize('form', ['matmul', 'dft'])
def test_export_branch_takes_the_onnx_forms(form, monkeypatch):
    calls = _count_onnx_calls(monkeypatch)
    layer = GlobalFilter(4, (6, 6), resize_mode='spatial')
    aff = AdaptiveFrequencyFilter(8, groups=2)
    x = torch.randn(2, 7, 9, 4)
    with torch.no_grad():
        plain = layer.forward_reference(x)
        plain_aff = aff(x.permute(0, 3, 1, 2).repeat(1, 2, 1, 1))
        with onnx_export(form):
            exported = layer(x)
            exported_aff = aff(x.permute(0, 3, 1, 2).repeat(1, 2, 1, 1))
    assert 'filter_spectrum' in calls and 'rfft2' in calls and 'irfft2' in calls
    torch.testing.assert_close(exported, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(exported_aff, plain_aff, rtol=1e-5, atol=1e-5)


def test_forward_reference_is_the_plain_branch():
    layer = GlobalFilter(16, (8, 8))
    x = torch.randn(2, 8, 8, 16)
    with fast_path(False):
        expected = layer(x)
    assert torch.equal(layer.forward_reference(x), expected)


def test_run_blocks_checkpoints_each_block_with_the_same_result():
    torch.manual_seed(0)
    blocks = torch.nn.ModuleList(torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Dropout(0.5))
                                 for _ in range(3))
    x = torch.randn(4, 8)
    results = []
    for with_cp in (False, True):
        for p in blocks.parameters():
            p.grad = None
        torch.manual_seed(1)
        out = run_blocks(blocks, x, with_cp)
        out.square().sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in blocks.parameters()]))
    (plain, plain_grads), (cp, cp_grads) = results
    assert torch.equal(plain, cp)
    assert all(torch.equal(a, b) for a, b in zip(plain_grads, cp_grads))
    with torch.no_grad():  # no autograd: no checkpointing
        torch.manual_seed(1)
        assert torch.equal(run_blocks(blocks, x, True), plain)


def test_onnx_forms_sit_below_the_layers():
    """``deploy.onnx_fft`` (which the layers import) imports torch and ``ops.config`` only."""
    tree = ast.parse(Path(onnx_fft.__file__).read_text())
    own = {(node.level, node.module) for node in tree.body
           if isinstance(node, ast.ImportFrom) and node.level}
    assert own == {(2, 'ops.config')}
