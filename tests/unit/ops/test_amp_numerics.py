"""Mixed precision: the fast path is as accurate as the plain formulation.

Every check runs one training step (forward, backward) in fp16 with loss scaling
(as ``GradScaler``: the loss times the scale, the gradients divided by it) or
bf16 autocast, and measures the relative error ``|a - a32| / |a32|`` of the
output, the input gradient and every parameter gradient against a float32 run.
The fast path's error must stay within ``2 x`` the plain formulation's
(``gfnet_dense.ops.fast_path(False)``) plus ``EPS``.
"""
import pytest
import torch
from torch import nn

from gfnet_dense import AFFNet, GFNetH
from gfnet_dense.layers import AdaptiveFrequencyFilter
from gfnet_dense.models.gfnet import GFNET_H_ARCHS, GFBlock
from gfnet_dense.ops import fast_path

PRECISIONS = {  # autocast dtype, loss scale
    'fp16-scale1024': (torch.float16, 1024.0),
    'fp16-scale65536': (torch.float16, 65536.0),
    'bf16': (torch.bfloat16, 1.0),
}
LAYER_SCALES = (1e-6, 1e-5, 1e-3)
GRIDS = {'stored': (16, 16), 'resized': (20, 24)}
EPS = 1e-5
# Gradient per output element: 1 for a block; 1e-3 for whole backbones, whose
# patch-embedding gradients (sums over every pixel) would overflow fp16 at loss
# scale 65536 in either formulation otherwise.
BACKBONE_GRAD = 1e-3


def _init_like_trunk(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)


def train_step(model, x, targets, dtype=None, scale=1.0, fast=True):
    """Output(s) and gradients (by parameter name, ``'input'`` for ``x``) of one
    step on the loss ``sum_i <out_i, target_i>``, in float32.

    Where ``x`` has all-zero tokens, ``'branch'`` is the output there: the
    residual branch alone, which the sum with ``x`` would round away elsewhere.
    """
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    with fast_path(fast), torch.autocast('cpu', dtype=dtype or torch.bfloat16,
                                         enabled=dtype is not None):
        outs = model(x)
    outs = outs if isinstance(outs, (tuple, list)) else (outs,)
    loss = sum((o.float() * t).sum() for o, t in zip(outs, targets))
    (loss * scale).backward()
    values = {f'out{i}': o.detach().float() for i, o in enumerate(outs)}
    if x.dim() == 4 and x.shape == outs[0].shape and (x == 0).all(-1).any():
        values['branch'] = outs[0].detach().float()[(x == 0).all(-1)]
    values['input'] = x.grad.float() / scale
    values.update({n: p.grad.float() / scale for n, p in model.named_parameters()
                   if p.grad is not None})
    return values


def relative_errors(values, truth):
    return {k: ((v - truth[k]).norm() / truth[k].norm().clamp_min(1e-30)).item()
            for k, v in values.items()}


def assert_fast_as_accurate(model, x, targets, precision):
    """Compare the fast path and the plain formulation under ``precision``."""
    dtype, scale = PRECISIONS[precision]
    truth = train_step(model, x, targets, fast=False)
    fast = relative_errors(train_step(model, x, targets, dtype, scale, fast=True), truth)
    plain = relative_errors(train_step(model, x, targets, dtype, scale, fast=False), truth)
    assert fast.keys() == plain.keys() == truth.keys()
    worse = {k: f'fast {fast[k]:.2e} plain {plain[k]:.2e}' for k in fast
             if not fast[k] <= 2 * plain[k] + EPS}  # also catches NaN
    assert not worse, worse
    return fast, plain


def _targets(outs_shapes, scale=1.0):
    """Loss weights: the gradient every output element gets."""
    return [scale * torch.randn(s) for s in outs_shapes]


@pytest.mark.parametrize('precision', sorted(PRECISIONS))
@pytest.mark.parametrize('grid', sorted(GRIDS))
@pytest.mark.parametrize('layer_scale', LAYER_SCALES)
def test_block(layer_scale, grid, precision):
    torch.manual_seed(0)
    block = GFBlock(96, GRIDS['stored'], layer_scale_init=layer_scale).train()
    _init_like_trunk(block)
    x = tokens_with_zero_rows(2, *GRIDS[grid], 96)
    assert_fast_as_accurate(block, x, _targets([x.shape]), precision)


def tokens_with_zero_rows(*shape):
    """Random ``(B, H, W, C)`` tokens, every other grid row zero: there the block's
    output is its residual branch alone (the filter mixes the other rows in)."""
    x = torch.randn(*shape)
    x[:, ::2] = 0
    return x


def _backbone(name):
    """The variant's real widths and layer scale, one block per stage but two in
    the third (depth only repeats blocks)."""
    arch = dict(GFNET_H_ARCHS[name], depths=(1, 1, 2, 1), drop_path_rate=0.0)
    return GFNetH(arch=arch).train()


@pytest.mark.parametrize('precision', ['fp16-scale65536', 'bf16'])
@pytest.mark.parametrize('name', ['ti', 's', 'b'])
def test_gfnet_h_backbone(name, precision):
    torch.manual_seed(0)
    model = _backbone(name)
    x = torch.randn(2, 3, 64, 80)  # every grid resized from the 224 pretraining grids
    shapes = [o.shape for o in model(x)]
    assert_fast_as_accurate(model, x, _targets(shapes, BACKBONE_GRAD), precision)


def plain_aff_filter(self, z):
    """AFFNet's filter as plainly written: FFTs in float32, the mask MLP left to
    autocast (the module computes it inside its float32 island)."""
    spectrum = torch.fft.rfft2(z.float(), norm='ortho')
    filtered = spectrum * self.mask(spectrum)
    return z + torch.fft.irfft2(filtered, s=z.shape[-2:], norm='ortho').to(z.dtype)


def assert_backbone_as_accurate(model, x, targets, precision):
    """A whole backbone whose fast path changes the rounding of one layer per block
    (AFFNet's filter) is compared in aggregate.

    Per-tensor error ratios of two equally accurate fp16 runs through ~60
    BatchNorm layers scatter widely (measured up to 3.7x either way on single
    small tensors, median 0.96-1.06), so the outputs and the input gradient are
    compared one by one (measured ratios 0.92-1.07), the parameter gradients by
    their pooled relative error and the median of their ratios (measured 0.92-1.08
    and 0.96-1.06). Gradients that are zero in exact arithmetic (biases feeding a
    train-mode BatchNorm through a linear map: their float32 "truth" is rounding
    noise) are left out, and so are gradients that overflow fp16 in both runs (a
    GradScaler skips that step).
    """
    dtype, scale = PRECISIONS[precision]
    truth = train_step(model, x, targets, fast=False)
    runs = {fast: train_step(model, x, targets, dtype, scale, fast=fast) for fast in (True, False)}
    finite = {fast: {k for k, v in values.items() if torch.isfinite(v).all()}
              for fast, values in runs.items()}
    assert finite[True] == finite[False], 'the fast path overflows elsewhere'
    errors = {fast: relative_errors(values, truth) for fast, values in runs.items()}
    dense = [k for k in truth if k.startswith(('out', 'input', 'branch'))]
    worse = {k: f'fast {errors[True][k]:.2e} plain {errors[False][k]:.2e}' for k in dense
             if not errors[True][k] <= 1.25 * errors[False][k] + EPS}
    assert not worse, worse
    typical = torch.tensor([v.norm() for v in truth.values()]).median()
    params = [k for k in truth if k not in dense and k in finite[True]
              and truth[k].norm() > 1e-4 * typical]
    assert len(params) >= 0.75 * (len(truth) - len(dense)), 'too few gradients compared'

    def pooled(values):
        error = sum((values[k] - truth[k]).norm() ** 2 for k in params)
        return (error / sum(truth[k].norm() ** 2 for k in params)).sqrt().item()

    fast, plain = pooled(runs[True]), pooled(runs[False])
    assert fast <= 1.25 * plain + EPS, (fast, plain)
    ratios = torch.tensor([errors[True][k] / errors[False][k] for k in params])
    assert ratios.median() <= 1.25, ratios.median()


@pytest.mark.parametrize('precision', ['fp16-scale65536', 'bf16'])
@pytest.mark.parametrize('seed', [0, 1])
def test_affnet(precision, seed, monkeypatch):
    # The fast path: the filter's float32 island; the plain formulation: the filter
    # as plainly written above. (Training steps run NCHW maps on both: AFFNet's
    # channels-last fast path is for inference, tests/unit/ops/test_affnet_fast_path.py.)
    original = AdaptiveFrequencyFilter.forward

    def forward(self, z):
        from gfnet_dense.ops import use_fast_path
        return original(self, z) if use_fast_path() else plain_aff_filter(self, z)

    monkeypatch.setattr(AdaptiveFrequencyFilter, 'forward', forward)
    torch.manual_seed(seed)
    model = AFFNet(arch='et').train()
    x = torch.randn(2, 3, 64, 80)
    shapes = [o.shape for o in model(x)]
    assert_backbone_as_accurate(model, x, _targets(shapes, BACKBONE_GRAD), precision)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('layer_scale', LAYER_SCALES)
def test_inference_with_16bit_weights(dtype, layer_scale):
    """A block converted with ``.half()`` / ``.bfloat16()``: no autocast, no autograd."""
    torch.manual_seed(0)
    block = GFBlock(96, GRIDS['stored'], layer_scale_init=layer_scale).eval()
    _init_like_trunk(block)
    x = tokens_with_zero_rows(2, *GRIDS['resized'], 96)
    branch = (x == 0).all(-1)
    with torch.no_grad():
        truth = block.forward_reference(x)[branch]
        block.to(dtype)
        fast = block(x.to(dtype))[branch].float()
        with fast_path(False):
            plain = block(x.to(dtype))[branch].float()
    error = {name: ((v - truth).norm() / truth.norm()).item()
             for name, v in (('fast', fast), ('plain', plain))}
    assert error['fast'] <= 2 * error['plain'] + EPS, error
