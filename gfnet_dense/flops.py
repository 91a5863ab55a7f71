"""FLOPs in the convention of the GFNet paper (and of fvcore, which it used).

Convolutions and matrix products count one multiply-accumulate as one FLOP;
every FFT over ``N`` points of ``C`` channels counts ``N * C * ceil(log2 N)``, as
the GFNet authors add by hand (fvcore alone skips FFTs). LayerNorm counts
``5 * numel`` as in fvcore; other element-wise ops are not counted. Work on
parameters alone that a model caches per input size in eval (GFNet's resized
filters and position embedding) is not per-image work: the model runs once
before counting, so it is excluded.
"""
import math

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from .ops.config import fast_path

aten = torch.ops.aten


def _fft_flops(real_shape, dim) -> int:
    points = math.prod(real_shape[d] for d in dim)
    channels = math.prod(real_shape) // points
    # FlopCounterMode counts a MAC as 2; doubled here so that halving the total
    # leaves the FFT at N * C * ceil(log2 N).
    return 2 * channels * points * math.ceil(math.log2(max(points, 2)))


def _r2c(input_shape, dim, *args, out_shape=None, **kwargs) -> int:
    return _fft_flops(input_shape, dim)


def _c2r(input_shape, dim, *args, out_shape=None, **kwargs) -> int:
    return _fft_flops(out_shape, dim)


def _c2c(input_shape, dim, *args, out_shape=None, **kwargs) -> int:
    return _fft_flops(input_shape, dim)


def _layer_norm(input_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * 5 * math.prod(input_shape)


def _cpu_attention(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """torch counts its GPU attention kernels but not the CPU one (timm's fused
    attention, e.g. MobileViT's): the same two matrix products."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


EXTRA_FORMULAS = {aten._fft_r2c: _r2c, aten._fft_c2r: _c2r,
                  aten._fft_c2c: _c2c, aten.native_layer_norm: _layer_norm,
                  aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention}


@torch.no_grad()
def count_flops(model: torch.nn.Module, inputs: torch.Tensor) -> int:
    """FLOPs of one forward pass of ``model(inputs)`` (paper convention, see module doc),
    counted on the plain formulation: the model's arithmetic, not that of a fast
    path (which may fuse ops, or recompute rows of AFFNet's strips)."""
    was_training = model.training
    model.eval()
    try:
        with fast_path(False):
            model(inputs)  # fills the per-size eval caches
            with FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS) as counter:
                model(inputs)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
