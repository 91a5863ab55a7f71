"""The resolution-adaptive global filter, GFNet's token mixer.

``irfft2(rfft2(x) * filter)`` over the token grid: a circular convolution over the
whole grid with the spatial kernel ``irfft2(filter)``. The filter is stored for
the grid it was trained on and resized to the input's (``filter_resize``).
"""
from typing import Sequence, Tuple

import torch
from torch import nn

from .. import ops
from ..deploy import onnx_fft
from .eval_cache import EvalCacheMixin
from .filter_resize import check_resize_mode, resize_filter
from .fx_leaf import fx_leaf
from .reference import ForwardReferenceMixin


@fx_leaf
class GlobalFilter(ForwardReferenceMixin, EvalCacheMixin, nn.Module):
    """Global filter token mixer: ``(B, H, W, C) -> (B, H, W, C)`` for any ``H, W``.

    The FFTs run in float32 (also under autocast); the output has the input dtype.

    Args:
        dim: channels ``C``.
        grid_size: ``(h, w)`` token grid the filter is stored for.
        resize_mode: how the filter follows other grids (``FILTER_RESIZE_MODES``).
    """

    def __init__(self, dim: int, grid_size: Sequence[int], resize_mode: str = 'bicubic'):
        super().__init__()
        h, w = grid_size
        self.grid_size = (int(h), int(w))
        self.resize_mode = check_resize_mode(resize_mode)
        self.complex_weight = nn.Parameter(torch.randn(h, w // 2 + 1, dim, 2) * 0.02)

    def extra_repr(self) -> str:
        return (f'dim={self.complex_weight.shape[2]}, grid_size={self.grid_size}, '
                f'resize_mode={self.resize_mode!r}')

    def filter_for(self, size: Tuple[int, int], channels_first: bool = False) -> torch.Tensor:
        """Complex64 filter ``(H, W//2+1, C)`` for a grid of ``size``, or a contiguous
        ``(C, H, W//2+1)`` with ``channels_first``; memoised in eval."""
        weight = self.complex_weight.float()
        if tuple(size) == self.grid_size:
            resized = weight.permute(2, 0, 1, 3).contiguous() if channels_first else weight
        else:
            with ops.config.autocast_off(weight):
                resized = self.memoize(
                    (tuple(size), channels_first, self.resize_mode),
                    lambda: resize_filter(weight, size, self.resize_mode, self.grid_size,
                                          channels_first).contiguous(),
                    [self.complex_weight])
        return torch.view_as_complex(resized)

    def onnx_filter_for(self, size: Tuple[int, int]) -> torch.Tensor:
        """``filter_for(size)`` as an ONNX export records it: resized in the graph at
        any (symbolic) size, also the stored one."""
        weight = self.complex_weight.float()
        with ops.config.autocast_off(weight):
            resized = resize_filter(weight, size, self.resize_mode, self.grid_size, onnx=True)
        return torch.view_as_complex(resized.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[1], x.shape[2])
        if ops.fast_path_eligible(x):  # fast: the FFTs over channels-first planes
            return ops.global_filter(x, self.filter_for(size, channels_first=True))
        with ops.config.autocast_off(x):  # float32 FFTs
            if ops.config.exporting_onnx():  # export: the FFTs' ONNX form
                out = onnx_fft.filter_spectrum(x.float(), self.onnx_filter_for(size), dim=(1, 2))
            else:  # plain
                filt = self.filter_for(size)
                spectrum = torch.fft.rfft2(x.float(), dim=(1, 2), norm='ortho')
                out = torch.fft.irfft2(spectrum * filt, s=size, dim=(1, 2), norm='ortho')
        return out.to(x.dtype)
