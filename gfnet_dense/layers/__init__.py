"""Building blocks of the GFNet family, each with a plain ``forward``.

Where a layer has a fast path (``GlobalFilter``), its ``forward`` writes the
formula and calls ``gfnet_dense.ops`` for the same result by faster kernels
while the fast path is on.
"""
from .adaptive_filter import AdaptiveFrequencyFilter, spectral_filter
from .eval_cache import (EvalCacheMixin, eval_cache_bytes, memoize_in_eval, parameter_key,
                         release_eval_caches)
from .filter_resize import (FILTER_RESIZE_MODES, infer_grid_size, interpolate_grid,
                            resize_filter, resize_filter_frequency, resize_filter_spatial)
from .global_filter import GlobalFilter
from .grad_checkpoint import run_blocks
from .input_check import check_image_batch
from .mlp import Mlp
from .patch_embed import PatchEmbed, grid_after, resize_pos_embed, to_2tuple

__all__ = [
    'AdaptiveFrequencyFilter', 'EvalCacheMixin', 'FILTER_RESIZE_MODES', 'GlobalFilter', 'Mlp',
    'PatchEmbed', 'check_image_batch', 'eval_cache_bytes', 'grid_after', 'infer_grid_size',
    'interpolate_grid', 'memoize_in_eval', 'parameter_key', 'release_eval_caches',
    'resize_filter', 'resize_filter_frequency', 'resize_filter_spatial', 'resize_pos_embed',
    'run_blocks', 'spectral_filter', 'to_2tuple',
]
