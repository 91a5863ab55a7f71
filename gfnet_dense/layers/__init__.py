"""Building blocks of the GFNet family.

A layer with a fast path branches in its ``forward``: the fast path
(``ops.fast_path_eligible``: ``gfnet_dense.ops``' kernels), the ONNX export form
(``ops.config.exporting_onnx``: ``gfnet_dense.deploy.onnx_fft``) and the plain
formulation; ``forward_reference`` runs the plain one.
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
from .patch_embed import PatchEmbed, grid_after, resize_pos_embed
from .reference import ForwardReferenceMixin

__all__ = [
    'AdaptiveFrequencyFilter', 'EvalCacheMixin', 'FILTER_RESIZE_MODES', 'ForwardReferenceMixin',
    'GlobalFilter', 'Mlp', 'PatchEmbed', 'check_image_batch', 'eval_cache_bytes', 'grid_after',
    'infer_grid_size', 'interpolate_grid', 'memoize_in_eval', 'parameter_key',
    'release_eval_caches', 'resize_filter', 'resize_filter_frequency', 'resize_filter_spatial',
    'resize_pos_embed', 'run_blocks', 'spectral_filter',
]
