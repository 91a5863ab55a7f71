"""FLOPs in the convention of the GFNet paper (and of fvcore, which it used).

Convolutions and matrix products count one multiply-accumulate (MAC) as one
FLOP; every FFT over ``N`` points of ``C`` channels counts ``N * C * ceil(log2 N)``,
as the GFNet authors add by hand (fvcore alone skips FFTs). Norms and
resampling count as in fvcore (LayerNorm and GroupNorm ``5 * numel``, BatchNorm
``2 * numel`` in eval, bilinear upsampling ``4 * output numel``, adaptive average
pooling ``input numel``); other element-wise ops are not counted. The formulas
are ``gfnet_dense.flop_handles``' (which also registers them with torch's
``FlopCounterMode`` and mmengine's ``FlopAnalyzer``, so that those count the
same).

What is counted is one forward pass of the plain formulation (no fast path) of
the model as a fresh one runs it, as every single-call counter does (mmengine's
``get_model_complexity_info`` and the ``get_flops.py`` tools built on it,
``FlopCounterMode`` around one call): at an input size whose token grid is not
the pretraining one, that pass also resizes GFNet's filters and position
embedding, work on parameters alone that a model in eval then caches for the
size (a few percent of the total; none at the stored grid or for AFFNet).
``steady_state=True`` counts a further pass at the same size instead, without that
work: what each further image costs.
"""
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from .flop_handles import FORMULAS, fft_macs
from .layers.eval_cache import release_eval_caches
from .ops.config import fast_path

aten = torch.ops.aten

__all__ = ['EXTRA_FORMULAS', 'count_flops', 'fft_macs']


def _cpu_attention(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """torch counts its GPU attention kernels but not the CPU one (timm's fused
    attention, e.g. MobileViT's): the same two matrix products."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


#: the formulas ``count_flops`` adds to torch's (FLOPs, 2 per MAC); read on each call
EXTRA_FORMULAS = {**FORMULAS, aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention}


@torch.no_grad()
def count_flops(model: torch.nn.Module, inputs: torch.Tensor, steady_state: bool = False) -> int:
    """FLOPs (MACs) of one forward pass of ``model(inputs)`` in eval (paper
    convention, see module doc), counted on the plain formulation: the model's
    arithmetic, not that of a fast path (which may fuse ops, fold BatchNorm into
    convolutions, or recompute rows of AFFNet's strips).

    The pass is a fresh model's (the per-size eval caches are dropped first), so
    it includes resizing filters and position embedding to a new grid, as the
    FLOP tools count; ``steady_state=True`` counts a second pass, without it."""
    was_training = model.training
    release_eval_caches(model)
    model.eval()
    try:
        with fast_path(False):
            if steady_state:
                model(inputs)  # fills the per-size eval caches
            with FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS) as counter:
                model(inputs)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
