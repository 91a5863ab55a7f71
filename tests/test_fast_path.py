"""The fast path equals the plain reference formulation within float32 tolerance."""
import pytest
import torch
import torch.nn.functional as F

from gfnet_dense import GFNetH
from gfnet_dense.models import gfnet
from gfnet_dense.models.gfnet import GFBlock, resize_pos_embed
from gfnet_dense.models.global_filter import (GlobalFilter, resize_filter,
                                              resize_filter_frequency, to_channels_first)

TOL = dict(atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize('size', [(6, 6), (9, 14), (13, 7)])
@pytest.mark.parametrize('mode', ['bicubic', 'spatial'])
def test_filter_forward_and_gradients_match_reference(size, mode):
    layer = GlobalFilter(5, (6, 6), resize_mode=mode)
    x = torch.randn(2, *size, 5, requires_grad=True)
    fast, ref = layer(x), layer.forward_reference(x)
    torch.testing.assert_close(fast, ref, **TOL)
    g = torch.randn_like(fast)
    grads_fast = torch.autograd.grad(fast, [x, layer.complex_weight], g)
    grads_ref = torch.autograd.grad(ref, [x, layer.complex_weight], g)
    for a, b in zip(grads_fast, grads_ref):
        torch.testing.assert_close(a, b, **TOL)
    with torch.no_grad():  # the in-place inference variant
        torch.testing.assert_close(layer.eval()(x), ref, **TOL)


@pytest.mark.parametrize('onednn', [True, False])
@pytest.mark.parametrize('layer_scale', [None, 0.3])
def test_block_matches_reference_in_training_and_inference(layer_scale, onednn, monkeypatch):
    monkeypatch.setattr(gfnet, '_ONEDNN_MLP', onednn and gfnet._ONEDNN_MLP)
    block = GFBlock(8, (6, 6), layer_scale_init=layer_scale)
    x = torch.randn(2, 10, 9, 8, requires_grad=True)
    ref = block.forward_reference(x)
    g = torch.randn_like(ref)
    params = [x] + list(block.parameters())
    grads_ref = torch.autograd.grad(ref, params, g)
    # whole, then in row chunks (forced small here: 90 rows would be one chunk)
    for chunked in (False, True):
        if chunked:
            monkeypatch.setattr(gfnet, '_row_chunks', _small_chunks)
        fast = block.train()(x)
        torch.testing.assert_close(fast, ref, **TOL)
        for a, b in zip(torch.autograd.grad(fast, params, g), grads_ref):
            torch.testing.assert_close(a, b, **TOL)
        with torch.no_grad():
            torch.testing.assert_close(block.eval()(x), ref, **TOL)


def _small_chunks(rows, hidden, chunk_elements):
    return [slice(i, i + 7) for i in range(0, rows, 7)] if chunk_elements else [slice(0, rows)]


def test_inference_mlp_weights_follow_parameter_updates():
    # eval caches the fc weights (reordered for oneDNN on CPU) until a parameter changes
    block = GFBlock(8, (6, 6), layer_scale_init=0.3).eval()
    x = torch.randn(1, 6, 6, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), block.forward_reference(x), **TOL)
        for param in (block.mlp.fc1.weight, block.mlp.fc2.weight, block.mlp.fc2.bias, block.gamma):
            param.mul_(1.5)
            torch.testing.assert_close(block(x), block.forward_reference(x), **TOL)


def test_block_with_drop_path_trains():
    block = GFBlock(8, (6, 6), drop_path=0.5, layer_scale_init=1e-2).train()
    x = torch.randn(4, 6, 6, 8, requires_grad=True)
    block(x).sum().backward()
    assert all(p.grad is not None for p in block.parameters())


def test_whole_backbone_matches_reference(monkeypatch):
    model = GFNetH(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 2, 1, 1],
                             layer_scale_init=0.1), pretrain_img_size=64).eval()
    x = torch.randn(2, 3, 75, 50)
    with torch.no_grad():
        fast = model(x)
        monkeypatch.setattr(GFBlock, 'forward', GFBlock.forward_reference)
        ref = model(x)
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, **TOL)


def test_bf16_autocast_training_step():
    block = GFBlock(8, (6, 6), layer_scale_init=1e-2)
    x = torch.randn(2, 7, 7, 8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = block(x)
    out.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in block.parameters())


def test_bf16_autocast_inference_runs_and_stays_close():
    model = GFNetH(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
                   pretrain_img_size=64).eval()
    x = torch.randn(1, 3, 70, 45)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            mixed = model(x)
    for a, b in zip(mixed, reference):
        assert a.shape == b.shape
        torch.testing.assert_close(a.float(), b, atol=0.1, rtol=0.1)


@pytest.mark.parametrize('group_elements', [1, 80])  # one / three channels per group
def test_filter_by_channel_groups_matches_reference(group_elements, monkeypatch):
    from gfnet_dense.models import global_filter
    monkeypatch.setattr(global_filter, '_FFT_GROUP_ELEMENTS', group_elements)
    monkeypatch.setattr(global_filter, '_FFT_GROUP_ALIGN', 1)
    layer = GlobalFilter(7, (6, 6))
    x = torch.randn(2, 8, 5, 7, requires_grad=True)  # 8 x 3 spectrum per channel
    assert len(global_filter._plane_groups(x.permute(0, 3, 1, 2))) > 2
    fast, ref = layer(x), layer.forward_reference(x)
    torch.testing.assert_close(fast, ref, **TOL)
    g = torch.randn_like(ref)
    params = [x, layer.complex_weight]
    for a, b in zip(torch.autograd.grad(fast, params, g), torch.autograd.grad(ref, params, g)):
        torch.testing.assert_close(a, b, **TOL)
    with torch.no_grad():
        torch.testing.assert_close(layer.eval()(x), ref, **TOL)


def test_tiled_transpose_equals_permute(monkeypatch):
    from gfnet_dense.models import global_filter
    monkeypatch.setattr(global_filter, '_TRANSPOSE_TILE', 1)  # 256-row tiles: 6 per image
    x = torch.randn(2, 37, 41, 24)
    with torch.no_grad():
        torch.testing.assert_close(to_channels_first(x), x.permute(0, 3, 1, 2).contiguous(),
                                   rtol=0, atol=0)


@pytest.mark.parametrize('mode', ['bicubic', 'bilinear'])
def test_matrix_resize_equals_interpolate(mode):
    w = torch.randn(14, 8, 6, 2)
    ref = F.interpolate(w.permute(2, 3, 0, 1).reshape(1, 12, 14, 8), size=(33, 17), mode=mode,
                        align_corners=True).reshape(6, 2, 33, 17).permute(2, 3, 0, 1)
    torch.testing.assert_close(resize_filter_frequency(w, (33, 32), mode), ref, **TOL)


@pytest.mark.parametrize('mode', ['bicubic', 'bilinear', 'spatial'])
def test_channels_first_resize_is_the_same_filter(mode):
    w = torch.randn(14, 8, 6, 2)
    standard = resize_filter(w, (20, 31), mode, (14, 14))
    channels_first = resize_filter(w, (20, 31), mode, (14, 14), channels_first=True)
    assert channels_first.is_contiguous() and channels_first.shape == (6, 20, 16, 2)
    torch.testing.assert_close(channels_first, standard.permute(2, 0, 1, 3), **TOL)


@pytest.mark.parametrize('dst', [(40, 23), (9, 13)])
def test_pos_embed_resize_equals_bicubic_interpolate(dst):
    pos = torch.randn(1, 14 * 12, 5, dtype=torch.float64)
    ref = F.interpolate(pos.reshape(1, 14, 12, 5).permute(0, 3, 1, 2), size=dst, mode='bicubic',
                        align_corners=False).permute(0, 2, 3, 1).reshape(1, -1, 5)
    torch.testing.assert_close(resize_pos_embed(pos.float(), (14, 12), dst), ref.float(), **TOL)


@pytest.mark.parametrize('batch', [1, 3])
@pytest.mark.parametrize('trainable', ['input', 'filter'])
def test_filter_gradients_when_only_one_side_is_trained(batch, trainable):
    layer = GlobalFilter(4, (6, 6))
    layer.complex_weight.requires_grad_(trainable == 'filter')
    x = torch.randn(batch, 9, 10, 4, requires_grad=trainable == 'input')
    target = x if trainable == 'input' else layer.complex_weight
    g = torch.randn(batch, 9, 10, 4)
    fast = torch.autograd.grad(layer(x), target, g)[0]
    ref = torch.autograd.grad(layer.forward_reference(x), target, g)[0]
    torch.testing.assert_close(fast, ref, **TOL)


@pytest.mark.parametrize('training', [True, False])
def test_block_compiles_without_graph_breaks(training):
    import torch._dynamo as dynamo
    torch.manual_seed(0)
    block = GFBlock(16, (8, 8), layer_scale_init=0.1).train(training)
    x = torch.randn(2, 10, 9, 16, requires_grad=training)
    with torch.set_grad_enabled(training):
        explained = dynamo.explain(block)(x)
        assert (explained.graph_count, explained.graph_break_count) == (1, 0), \
            [b.reason for b in explained.break_reasons]
        dynamo.reset()
        compiled = torch.compile(block, backend='aot_eager', fullgraph=True)
        out, ref = compiled(x), block(x)
    torch.testing.assert_close(out, ref, **TOL)
    if training:
        params = [x] + list(block.parameters())
        g = torch.randn_like(ref)
        for a, b in zip(torch.autograd.grad(out, params, g), torch.autograd.grad(ref, params, g)):
            torch.testing.assert_close(a, b, **TOL)


def test_backbone_is_one_graph_for_torch_compile():
    import torch._dynamo as dynamo
    model = GFNetH(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 2, 1, 1],
                             layer_scale_init=0.1), pretrain_img_size=64)
    x = torch.randn(2, 3, 75, 50)
    for training in (True, False):
        with torch.set_grad_enabled(training):
            explained = dynamo.explain(model.train(training))(x)
        assert (explained.graph_count, explained.graph_break_count) == (1, 0), \
            [b.reason for b in explained.break_reasons]
        dynamo.reset()
