"""The fast path equals the plain reference formulation within float32 tolerance."""
import importlib.util

import pytest
import torch
import torch.nn.functional as F

from gfnet_dense import GFNetH
from gfnet_dense.layers import (GlobalFilter, resize_filter, resize_filter_frequency,
                                resize_pos_embed)
from gfnet_dense.models.gfnet import GFBlock
from gfnet_dense.ops import (config, fast_path, fft_channel_groups, force_device_type,
                             mlp_row_chunk, set_fast_path, to_channels_first, use_fast_path,
                             use_onednn_mlp, use_tiled_transpose)
from helpers import CountOps

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


# decisions taken for device_type (the tensors are on CPU); CUDA never uses oneDNN
@pytest.mark.parametrize('device_type,onednn', [('cpu', True), ('cpu', False), ('cuda', True)])
@pytest.mark.parametrize('layer_scale', [None, 0.3])
def test_block_matches_reference_in_training_and_inference(layer_scale, device_type, onednn,
                                                           monkeypatch):
    monkeypatch.setattr(config, 'ONEDNN_LINEAR_AVAILABLE',
                        onednn and config.ONEDNN_LINEAR_AVAILABLE)
    block = GFBlock(8, (6, 6), layer_scale_init=layer_scale)
    x = torch.randn(2, 10, 9, 8, requires_grad=True)
    ref = block.forward_reference(x)
    g = torch.randn_like(ref)
    params = [x] + list(block.parameters())
    grads_ref = torch.autograd.grad(ref, params, g)
    # whole, then in row chunks (forced small here: 90 rows would be one chunk)
    for chunked in (False, True):
        if chunked:
            monkeypatch.setattr(config, 'MLP_CHUNK_ELEMENTS', 7 * 32)  # 7 rows of 32 hidden
            monkeypatch.setattr(config, 'MLP_CHUNK_MIN_ROWS', 1)
        with force_device_type(device_type):
            fast = block.train()(x)
            grads = torch.autograd.grad(fast, params, g)
            with torch.no_grad():
                inferred = block.eval()(x)
        torch.testing.assert_close(fast, ref, **TOL)
        for a, b in zip(grads, grads_ref):
            torch.testing.assert_close(a, b, **TOL)
        torch.testing.assert_close(inferred, ref, **TOL)


def test_cuda_decisions():
    for compiling in (False, True):
        assert fft_channel_groups((4, 768, 256, 256), 'cuda', compiling) == [(None, slice(None))]
        assert not use_onednn_mlp('cuda', torch.float32, compiling)
        assert not use_tiled_transpose('cuda', False, compiling)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for backward in (False, True):
            assert mlp_row_chunk('cuda', dtype, backward) is None


def test_cpu_decisions():
    assert len(fft_channel_groups((2, 96, 128, 128), 'cpu', False)) > 2
    # a small grid: whole images per group, not one call per image
    assert fft_channel_groups((128, 64, 8, 8), 'cpu', False) == [
        (slice(0, 102), slice(None)), (slice(102, 204), slice(None))]
    assert fft_channel_groups((16, 64, 8, 8), 'cpu', False) == [(None, slice(None))]
    assert fft_channel_groups((2, 96, 128, 128), 'cpu', True) == [(None, slice(None))]
    assert mlp_row_chunk('cpu', torch.float32, backward=True) == config.MLP_CHUNK_ELEMENTS
    assert mlp_row_chunk('cpu', torch.bfloat16, backward=False) == config.MLP_CHUNK_ELEMENTS
    # 16-bit weight gradients are one GEMM each, never summed over chunks
    assert mlp_row_chunk('cpu', torch.float16, backward=True) is None
    assert use_onednn_mlp('cpu', torch.float32, False) == config.ONEDNN_LINEAR_AVAILABLE
    assert not use_onednn_mlp('cpu', torch.bfloat16, False)
    assert not use_onednn_mlp('cpu', torch.float32, True)
    assert use_tiled_transpose('cpu', False, False)
    assert not use_tiled_transpose('cpu', True, False)


def test_forced_device_type_changes_the_kernels(monkeypatch):
    # tiny groups and chunks: on CPU decisions many FFT groups, several MLP chunks
    monkeypatch.setattr(config, 'FFT_GROUP_ELEMENTS', 1)
    monkeypatch.setattr(config, 'FFT_GROUP_ALIGN', 1)
    monkeypatch.setattr(config, 'MLP_CHUNK_ELEMENTS', 7 * 32)
    monkeypatch.setattr(config, 'MLP_CHUNK_MIN_ROWS', 1)
    block = GFBlock(8, (6, 6), layer_scale_init=0.3).eval()
    x = torch.randn(2, 10, 9, 8)
    counts = {}
    for device_type in ('cpu', 'cuda'):
        with force_device_type(device_type), torch.no_grad(), CountOps() as ops:
            block(x)
        counts[device_type] = ops.counts
    assert counts['cuda'].get('aten._fft_r2c') == 1 and counts['cpu']['aten._fft_r2c'] == 16
    assert ('mkldnn._linear_pointwise' in counts['cpu']) == config.ONEDNN_LINEAR_AVAILABLE
    assert 'mkldnn._linear_pointwise' not in counts['cuda']
    assert counts['cuda'].get('aten.addmm') == 2  # fc1, fc2 over all 180 rows at once


def _autograd_nodes(t):
    """Names of the autograd nodes that produced ``t``."""
    seen, todo = set(), [t.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and node not in seen:
            seen.add(node)
            todo.extend(next_node for next_node, _ in node.next_functions)
    return {type(node).__name__ for node in seen}


def test_switch_runs_the_plain_formulation():
    block = GFBlock(8, (6, 6), layer_scale_init=0.3).train()
    x = torch.randn(2, 10, 9, 8, requires_grad=True)
    functions = {'_MlpFunctionBackward', '_GlobalFilterFunctionBackward'}
    assert use_fast_path() and functions <= _autograd_nodes(block(x))
    with fast_path(False):
        assert not use_fast_path()
        out, filtered = block(x), block.filter(x)
    assert use_fast_path()
    assert not functions & _autograd_nodes(out)
    assert torch.equal(out, block.forward_reference(x))
    assert torch.equal(filtered, block.filter.forward_reference(x))
    set_fast_path(False)
    try:
        assert not functions & _autograd_nodes(block(x))
    finally:
        set_fast_path(True)


def test_environment_variable_turns_the_fast_path_off(monkeypatch):
    # a fresh copy of the config module, as a new process would import it (named
    # inside gfnet_dense.ops for its relative imports)
    spec = importlib.util.spec_from_file_location('gfnet_dense.ops._fresh_config',
                                                  config.__file__)
    for value, expected in (('0', False), ('1', True), (None, True)):
        if value is None:
            monkeypatch.delenv('GFNET_FAST_PATH', raising=False)
        else:
            monkeypatch.setenv('GFNET_FAST_PATH', value)
        fresh = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fresh)
        assert fresh.use_fast_path() is expected


def test_inference_mlp_weights_follow_parameter_updates():
    # eval caches the fc weights (reordered for oneDNN on CPU) until a parameter changes
    block = GFBlock(8, (6, 6), layer_scale_init=0.3).eval()
    x = torch.randn(1, 6, 6, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), block.forward_reference(x), **TOL)
        for param in (block.mlp.fc1.weight, block.mlp.fc2.weight, block.mlp.fc2.bias, block.gamma):
            param.mul_(1.5)
            torch.testing.assert_close(block(x), block.forward_reference(x), **TOL)


def test_train_mode_without_autograd_keeps_drop_path():
    # the in-place inference kernel has no stochastic depth: training mode without
    # autograd (e.g. a no_grad pass of a model being trained) takes the other kernel
    block = GFBlock(8, (6, 6), drop_path=0.5, layer_scale_init=0.3).train()
    x = torch.randn(8, 6, 6, 8)
    with torch.no_grad():
        torch.manual_seed(1)
        fast = block(x)
        torch.manual_seed(1)
        plain = block.forward_reference(x)
    torch.testing.assert_close(fast, plain, **TOL)
    dropped = (fast - x).flatten(1).abs().amax(1) == 0
    assert 0 < dropped.sum() < len(x)  # some samples' branches dropped, not all


def test_block_with_drop_path_trains():
    block = GFBlock(8, (6, 6), drop_path=0.5, layer_scale_init=1e-2).train()
    x = torch.randn(4, 6, 6, 8, requires_grad=True)
    block(x).sum().backward()
    assert all(p.grad is not None for p in block.parameters())


def test_whole_backbone_matches_reference():
    model = GFNetH(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 2, 1, 1],
                             layer_scale_init=0.1), pretrain_img_size=64).eval()
    x = torch.randn(2, 3, 75, 50)
    with torch.no_grad():
        fast = model(x)
        with fast_path(False):
            ref = model(x)
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, **TOL)


def test_bf16_autocast_training_step_gradients_match_fp32():
    block = GFBlock(8, (6, 6), layer_scale_init=1e-2)
    x = torch.randn(2, 7, 7, 8)
    params = list(block.parameters())
    reference = torch.autograd.grad(block(x).sum(), params)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = block(x)
    mixed = torch.autograd.grad(out.float().sum(), params)
    for (name, _), a, b in zip(block.named_parameters(), mixed, reference):
        assert a.dtype == torch.float32, name
        # bf16 keeps 8 bits of mantissa: ~0.4% per rounding; measured 0.2-0.6% here
        assert (a - b).norm() <= 0.02 * b.norm(), name


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


@pytest.mark.parametrize('device_type', ['cpu', 'cuda'])  # decisions for; tensors on CPU
# one channel, three channels, two whole images per group
@pytest.mark.parametrize('group_elements', [1, 80, 2 * 7 * 24])
def test_filter_by_channel_groups_matches_reference(group_elements, device_type, monkeypatch):
    monkeypatch.setattr(config, 'FFT_GROUP_ELEMENTS', group_elements)
    monkeypatch.setattr(config, 'FFT_GROUP_ALIGN', 1)
    layer = GlobalFilter(7, (6, 6))
    x = torch.randn(3, 8, 5, 7, requires_grad=True)  # 8 x 3 spectrum per channel
    groups = fft_channel_groups((3, 7, 8, 5), device_type, False)
    assert len(groups) >= 2 if device_type == 'cpu' else len(groups) == 1
    ref = layer.forward_reference(x)
    g = torch.randn_like(ref)
    params = [x, layer.complex_weight]
    with force_device_type(device_type):
        fast = layer(x)
        grads = torch.autograd.grad(fast, params, g)
        with torch.no_grad():
            inferred = layer.eval()(x)
    torch.testing.assert_close(fast, ref, **TOL)
    for a, b in zip(grads, torch.autograd.grad(ref, params, g)):
        torch.testing.assert_close(a, b, **TOL)
    torch.testing.assert_close(inferred, ref, **TOL)


def test_tiled_transpose_equals_permute(monkeypatch):
    monkeypatch.setattr(config, 'TRANSPOSE_TILE', 1)  # 256-row tiles: 6 per image
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
