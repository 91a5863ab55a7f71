"""AFFNet's fast path (channels-last maps in inference) against its plain formulation.

``gfnet_dense.ops.config.conv_memory_format`` makes the trunk convert its input
to channels-last at the stem when the fast path is on and autograd is off, so
every convolution and the frequency filter of an inference run work on
channels-last tensors (the GroupNorms on NCHW planes), and each convolution runs
with its BatchNorm folded in (``ops.conv_bn``); ``fast_path(False)`` keeps them
NCHW and separate. Training steps run the plain formulation on the fast path too:
torch's channels-last CPU BatchNorm computes float32 batch statistics less
accurately than its NCHW kernel (one layer, input mean 1: 8e-7 vs 6e-8 relative
error; the whole AFFNet-ET step erred 1.6-2.9x the plain one), and a fast path
never trades accuracy.

So the tests check: the switch selects the format (and leaves training NCHW);
training steps of the fast path are bit-identical to the plain ones in float32,
bf16 autocast and fp16 autocast with loss scaling (GradScaler), outputs and
gradients; inference outputs agree in float32 and are as accurate as the plain
ones against a float64 run in all three precisions. The models: the timm
classifier ``affnet_et`` and the MMSeg backbone ``AFFNet(arch='et')`` (strides to
32, and ``output_stride=8``), in train mode (BatchNorm on batch statistics) and
eval mode (running statistics calibrated on another batch); inference in eval mode.

All numbers quoted below were measured on CPU (torch 2.11, OMP_NUM_THREADS=1,
inputs 2x3x64x80, seeds 0-3 of the construction below).
"""
import copy
import functools

import pytest
import timm
import torch
from torch import nn

from gfnet_dense import AFFNet
from gfnet_dense.models import affnet as affnet_model  # registers affnet_* with timm
from gfnet_dense.layers import adaptive_filter
from gfnet_dense.ops import config, fast_path, set_fast_path, use_fast_path
from helpers import CountOps

INPUT_SHAPE = (2, 3, 64, 80)
MODELS = {  # constructor, gradient each output element gets (loss weights' scale)
    # backbones: 1e-3, like a loss averaged over pixels; at 1e-2 with loss scale
    # 2**12 one of 4 seeds of the output_stride=8 backbone overflowed fp16 in
    # both paths (the step a GradScaler skips)
    'classifier': (lambda: timm.create_model('affnet_et', num_classes=10), 1.0),
    'backbone': (lambda: AFFNet(arch='et', out_indices=(1, 2, 3, 4)), 1e-3),
    'backbone-os8': (lambda: AFFNet(arch='et', output_stride=8), 1e-3),
}
MODES = ('train', 'eval')
PRECISIONS = {  # autocast dtype, GradScaler initial scale (None: no scaling)
    'fp32': (None, None),
    'bf16': (torch.bfloat16, None),
    'fp16-scaled': (torch.float16, 2.0 ** 12),
}
# inference, float32, fast vs plain: assert_close(rtol=RTOL32, atol=ATOL32 * max|plain|);
# measured max |fast - plain| / max |plain| <= 3.5e-6
RTOL32, ATOL32 = 1e-4, 1e-5
# inference error vs float64 (outputs): fast <= RATIO x plain + EPS[precision];
# measured ratios 0.85-0.99 (fp32, plain errors 6e-7 to 2e-6), 0.76-0.84 (bf16, 2e-2
# to 5e-2), 0.65-0.89 (fp16, 2e-3 to 6e-3): BatchNorm folded into the convolutions
# rounds once less
RATIO = 1.25
EPS = {'fp32': 1e-9, 'bf16': 1e-5, 'fp16-scaled': 1e-5}


# ------------------------------------------------------------------- helpers
def _as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _calibrate(model: nn.Module, x: torch.Tensor) -> None:
    """Running statistics of every BatchNorm = the batch statistics of ``x``, so
    that eval mode sees realistic normalisation."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch sets them
    model.train()
    with torch.no_grad(), fast_path(False):
        model(x)
    for m in norms:
        m.momentum = 0.1


_REAL_SPECTRAL_FILTER = adaptive_filter.spectral_filter


def _spectral_filter_any_dtype(planes, multiplier):
    """``adaptive_filter.spectral_filter`` that keeps float64 in float64 (the module
    casts to float32 for its FFTs); other dtypes go to the real one."""
    if planes.dtype != torch.float64:
        return _REAL_SPECTRAL_FILTER(planes, multiplier)
    spectrum = torch.fft.rfft2(planes, norm='ortho')
    return torch.fft.irfft2(spectrum * multiplier(spectrum), s=planes.shape[-2:], norm='ortho')


def train_step(model, x, targets, fast, dtype=None, loss_scale=None, double=False):
    """One forward/backward of a fresh copy of ``model`` (BatchNorm running
    statistics start equal in every run) on the loss ``sum_i <out_i, target_i>``.

    ``dtype``: CPU autocast to it; ``loss_scale``: fp16 training as with
    ``torch.amp.GradScaler`` (scaled loss, ``unscale_`` of the parameter
    gradients). Returns ``{'out<i>', 'input', parameter names: float64 tensors}``.
    """
    model = copy.deepcopy(model)
    x = x.clone()
    if double:
        model, x = model.double(), x.double()
    x.requires_grad_(True)
    with fast_path(fast), torch.autocast('cpu', dtype=dtype or torch.bfloat16,
                                         enabled=dtype is not None):
        outs = _as_tuple(model(x))
    loss = sum((o.double() * t.double()).sum() for o, t in zip(outs, targets))
    if loss_scale is None:
        loss.backward()
        input_grad = x.grad
    else:
        scaler = torch.amp.GradScaler('cpu', init_scale=loss_scale)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # parameter gradients only
        input_grad = x.grad / scaler.get_scale()
    values = {f'out{i}': o.detach().double() for i, o in enumerate(outs)}
    values['input'] = input_grad.double()
    values.update({n: p.grad.double() for n, p in model.named_parameters() if p.grad is not None})
    return values


@functools.lru_cache(maxsize=None)
def setup(name, mode):
    """Model (seed 0, calibrated, in ``mode``), input and loss weights."""
    build, grad = MODELS[name]
    torch.manual_seed(0)
    model = build()
    x = torch.randn(INPUT_SHAPE)
    _calibrate(model, torch.randn(INPUT_SHAPE))
    model.train(mode == 'train')
    with torch.no_grad(), fast_path(False):
        shapes = [o.shape for o in _as_tuple(model(x))]
    targets = [grad * torch.randn(s) for s in shapes]
    return model, x, targets


def relative_error(value, truth):
    return ((value - truth).norm() / truth.norm().clamp_min(1e-300)).item()


def dense_keys(values):
    return [k for k in values if k.startswith(('out', 'input'))]


def typical_grad(reference):
    """Median over the parameter gradients of their largest magnitude."""
    return torch.tensor([v.abs().max() for k, v in reference.items()
                         if not k.startswith(('out', 'input'))]).median().item()


def exact_zero_grads(reference):
    """Parameter gradients that are zero in exact arithmetic (float64: rounding
    noise ~1e-16 of the typical gradient)."""
    typical = typical_grad(reference)
    return {k for k, v in reference.items()
            if not k.startswith(('out', 'input')) and v.abs().max() < 1e-9 * typical}


def nonzero_param_grads(reference):
    dense, zero = set(dense_keys(reference)), exact_zero_grads(reference)
    return [k for k in reference if k not in dense and k not in zero]


def pooled_error(values, reference, keys):
    error = sum((values[k] - reference[k]).norm() ** 2 for k in keys)
    return (error / sum(reference[k].norm() ** 2 for k in keys)).sqrt().item()


CASES = [pytest.param(name, mode, id=f'{name}-{mode}') for name in MODELS for mode in MODES]
EVAL_CASES = [pytest.param(name, id=name) for name in MODELS]


def _layouts(model, x, fast):
    """Memory layout of the stem's output, of the first filter's input and of the
    returned maps (backbone) or the last stage's output (classifier)."""
    seen = {}
    hooks = [model.stem.register_forward_hook(lambda m, i, o: seen.setdefault('stem', o)),
             model.stages[2].blocks[0].filter.register_forward_pre_hook(
                 lambda m, i: seen.setdefault('filter', i[0])),
             model.stages[-1].register_forward_hook(lambda m, i, o: seen.setdefault('last', o))]
    try:
        if fast is None:  # the process-wide switch, off
            previous = use_fast_path()
            set_fast_path(False)
            try:
                outs = model(x)
            finally:
                set_fast_path(previous)
        else:
            with fast_path(fast):
                outs = model(x)
    finally:
        for h in hooks:
            h.remove()
    if isinstance(outs, tuple):
        seen.update({f'out{i}': o for i, o in enumerate(outs)})
    return seen


# --------------------------------------------------------------------- tests
@pytest.mark.parametrize('name', list(MODELS))
def test_switch_selects_the_memory_format(name):
    """Inference on the fast path is channels-last end to end, the plain one and
    every run with autograd NCHW: fails if the switch stops doing anything."""
    switch_before = use_fast_path()
    torch.manual_seed(0)
    model = MODELS[name][0]().eval()
    expected = AFFNet if name.startswith('backbone') else affnet_model.AFFNetClassifier
    assert isinstance(model, expected)
    x = torch.randn(INPUT_SHAPE)
    with torch.no_grad():
        with fast_path(True):
            assert config.conv_memory_format(x, training=False) == torch.channels_last
            # train mode (BatchNorm on batch statistics) without autograd too
            assert config.conv_memory_format(x, training=True) == torch.contiguous_format
        with fast_path(False):
            assert config.conv_memory_format(x, training=False) == torch.contiguous_format
        runs = {'fast': _layouts(model, x, True), 'plain': _layouts(model, x, False),
                'plain (set_fast_path)': _layouts(model, x, None)}
    with fast_path(True):  # autograd on: training takes the plain formulation
        assert config.conv_memory_format(x, training=False) == torch.contiguous_format
        runs['fast, autograd'] = _layouts(model, x, True)
    for run, tensors in runs.items():
        assert tensors.keys() >= {'stem', 'filter', 'last'}, run
        if name != 'classifier':
            assert len([k for k in tensors if k.startswith('out')]) == 4, run
        for where, t in tensors.items():
            assert t.dim() == 4 and min(t.shape[1:]) > 1, (run, where, t.shape)  # formats differ
            if run == 'fast':
                assert t.is_contiguous(memory_format=torch.channels_last), (run, where)
                assert not t.is_contiguous(), (run, where)
            else:
                assert t.is_contiguous(), (run, where)
                assert not t.is_contiguous(memory_format=torch.channels_last), (run, where)
    assert use_fast_path() == switch_before  # restored


@pytest.mark.parametrize('precision', list(PRECISIONS))
@pytest.mark.parametrize('name,mode', CASES)
def test_training_step_is_the_plain_formulation(name, mode, precision):
    """A training step on the fast path equals the plain one bit for bit:
    outputs, input gradient, every parameter gradient."""
    model, x, targets = setup(name, mode)
    dtype, loss_scale = PRECISIONS[precision]
    fast, plain = (train_step(model, x, targets, f, dtype, loss_scale) for f in (True, False))
    assert fast.keys() == plain.keys() and len(fast) > 200  # every parameter got a gradient
    differ = [k for k in fast if not torch.equal(fast[k], plain[k])]
    assert not differ, differ


def test_group_norm_of_channels_last_maps_is_the_nchw_kernels():
    """The one-group GroupNorm runs on NCHW planes for channels-last maps too: the
    channels-last CPU kernel errs 300x more at input mean 100 (measured 4e-4 vs 1e-6)."""
    norm = affnet_model.LayerNorm2d(64)
    nn.init.normal_(norm.weight), nn.init.normal_(norm.bias)
    x = torch.randn(2, 64, 16, 20) * 2 + 100
    with torch.no_grad():
        plain = norm(x)
        fast = norm(x.contiguous(memory_format=torch.channels_last))
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(fast, plain)


@functools.lru_cache(maxsize=None)
def inference_runs(name):
    """Eval mode without autograd: the float64 reference and, per precision, the
    outputs of the fast and the plain path (as float64 tensors)."""
    model, x, _ = setup(name, 'eval')
    model = copy.deepcopy(model)
    with pytest.MonkeyPatch.context() as mp, torch.no_grad():
        mp.setattr(adaptive_filter, 'spectral_filter', _spectral_filter_any_dtype)
        reference = [o.double() for o in _as_tuple(copy.deepcopy(model).double()(x.double()))]
    runs = {}
    for precision, (dtype, _) in PRECISIONS.items():
        for fast in (True, False):
            with torch.no_grad(), fast_path(fast), torch.autocast(
                    'cpu', dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                runs[precision, fast] = [o.double()
                                         for o in _as_tuple(copy.deepcopy(model)(x))]
    return reference, runs


@pytest.mark.parametrize('name', EVAL_CASES)
def test_inference_fp32_fast_equals_plain(name):
    _, runs = inference_runs(name)
    for i, (fast, plain) in enumerate(zip(runs['fp32', True], runs['fp32', False])):
        torch.testing.assert_close(fast, plain, rtol=RTOL32,
                                   atol=ATOL32 * plain.abs().max().item(), msg=f'out{i}')


@pytest.mark.parametrize('precision', list(PRECISIONS))
@pytest.mark.parametrize('name', EVAL_CASES)
def test_inference_as_accurate_as_plain(name, precision):
    """Against float64, every output's error on the fast path is no larger than
    the plain formulation's (float32, bf16 and fp16 autocast)."""
    reference, runs = inference_runs(name)
    worse = {}
    for i, truth in enumerate(reference):
        fast, plain = (relative_error(runs[precision, f][i], truth) for f in (True, False))
        if not fast <= RATIO * plain + EPS[precision]:
            worse[f'out{i}'] = f'fast {fast:.2e} plain {plain:.2e}'
    assert not worse, worse


def test_inference_folds_batch_norm_into_the_convolution():
    """On the fast path, inference runs each conv + BatchNorm as one convolution
    (``gfnet_dense.ops.conv_bn``) with weights kept while in eval; training and
    the plain formulation run the BatchNorm."""
    torch.manual_seed(0)
    model = AFFNet(arch='et').eval()
    _calibrate(model, torch.randn(INPUT_SHAPE))
    model.eval()
    calls = []
    model.stem[1].register_forward_hook(lambda m, i, o: calls.append(1))
    x = torch.randn(INPUT_SHAPE)
    with torch.no_grad():
        with fast_path(False):
            plain = model(x)
        assert len(calls) == 1
        fast = model(x)
        assert len(calls) == 1  # folded
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item())
    # new statistics (a training step) reach the next inference
    model.train()
    model(torch.randn(INPUT_SHAPE) * 3 + 1)
    model.eval()
    with torch.no_grad():
        fast = model(x)
        with fast_path(False):
            plain = model(x)
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item())


def test_fold_batch_norm_with_a_conv_bias():
    from gfnet_dense.ops.conv_bn import conv_folded, fold_batch_norm
    torch.manual_seed(0)
    conv, norm = nn.Conv2d(8, 16, 3, 2, 1, bias=True), nn.BatchNorm2d(16).eval()
    for t in (norm.weight, norm.bias, norm.running_mean):
        nn.init.normal_(t)
    nn.init.uniform_(norm.running_var, 0.5, 2)
    x = torch.randn(2, 8, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(conv_folded(x, conv, *fold_batch_norm(conv, norm)),
                                   norm(conv(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('kernel,groups', [(1, 1), (3, 1), (3, 8)])
def test_conv_silu_in_place_equals_the_layers(kernel, groups):
    """``conv_folded_silu``: conv then SiLU in place on its output, bit for bit."""
    from gfnet_dense.ops.conv_bn import conv_folded, conv_folded_silu
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, kernel, 1, kernel // 2, groups=groups, bias=False)
    weight, bias = conv.weight.detach(), torch.randn(16)
    x = torch.randn(2, 8, 9, 11).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = torch.nn.functional.silu(conv_folded(x, conv, weight, bias))
        with CountOps() as ops:
            got = conv_folded_silu(x, conv, weight, bias)
    assert ops.counts.get('aten.silu_') == 1 and 'aten.silu' not in ops.counts
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_mbconv_strip_decisions():
    assert config.mbconv_strip_rows((1, 128, 256, 256), 2, 'cpu') == \
        config.MBCONV_STRIP_ELEMENTS // (128 * 256) // 2
    assert config.mbconv_strip_rows((1, 128, 256, 256), 2, 'cuda') is None
    assert config.mbconv_strip_rows((1, 64, 32, 32), 1, 'cpu') is None  # small: whole map
    assert config.mbconv_strip_rows((1, 8192, 256, 256), 1, 'cpu') == 1


@pytest.mark.parametrize('expand_ratio,stride,dilation', [(4, 1, 1), (4, 2, 1), (1, 1, 1),
                                                          (2, 1, 2), (4, 2, 2)])
@pytest.mark.parametrize('channels_last', [True, False])
def test_inverted_residual_strips_equal_the_whole_map(expand_ratio, stride, dilation,
                                                      channels_last):
    """Every strip height (one row, several, uneven last strip, one strip), odd
    sizes, with and without expansion and residual, dilated as output_stride makes it."""
    from gfnet_dense.ops.mbconv import inverted_residual_strips
    torch.manual_seed(0)
    block = affnet_model.InvertedResidual(16, 16, stride, expand_ratio, dilation)
    x = torch.randn(2, 16, 13, 11)
    _calibrate(block, x)
    block.eval()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), fast_path(False):
        expected = block(x)
    layers = [layer.folded() for layer in block.block]
    expand = layers[0] if len(layers) == 3 else None
    with torch.no_grad():
        for rows in (1, 2, 3, 5, 100):
            got = inverted_residual_strips(x, expand, layers[-2], layers[-1], block.residual, rows)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5, msg=f'{rows} rows')


def test_affnet_inference_in_strips_equals_whole_maps(monkeypatch):
    """Tiny strips forced on a whole AFFNet: the same maps as whole-map inference."""
    torch.manual_seed(0)
    model = AFFNet(arch='et', output_stride=16).eval()
    _calibrate(model, torch.randn(INPUT_SHAPE))
    model.eval()
    x = torch.randn(1, 3, 45, 70)
    with torch.no_grad():
        whole = model(x)
        monkeypatch.setattr(config, 'MBCONV_STRIP_ELEMENTS', 16)
        with CountOps() as ops:
            strips = model(x)
    assert ops.counts['aten.constant_pad_nd'] > 0  # border strips padded
    for a, b in zip(strips, whole):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item())
