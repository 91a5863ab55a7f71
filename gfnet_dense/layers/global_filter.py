"""The resolution-adaptive global filter, GFNet's token mixer.

A global filter multiplies the 2-D real FFT of a token grid by a learnable complex
filter and transforms back. By the convolution theorem this is a circular
convolution over the whole grid with the spatial kernel ``irfft2(filter)``.

The filter is stored at the grid it was (pre)trained on and resized on the fly to
the grid of the current input (``filter_resize``), so weights learned at 224x224
run at any size.
"""
from typing import Sequence, Tuple

import torch
from torch import nn

from .. import ops
from ..ops.dft import filter_spectrum
from .eval_cache import EvalCacheMixin
from .filter_resize import check_resize_mode, resize_filter
from .fx_leaf import fx_leaf


@fx_leaf
class GlobalFilter(EvalCacheMixin, nn.Module):
    """Global filter token mixer on a channels-last token grid.

    Args:
        dim: channels ``C``.
        grid_size: ``(h, w)`` token grid the filter is stored for (pretraining size).
        resize_mode: how the filter follows other grids, see ``FILTER_RESIZE_MODES``.

    Shape: ``(B, H, W, C) -> (B, H, W, C)`` for any ``H, W``; the FFT runs in
    float32 (also under autocast) and the output has the input dtype.
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
        """Complex64 filter ``(H, W//2+1, C)`` for a token grid of ``size``, or a
        contiguous ``(C, H, W//2+1)`` with ``channels_first`` (memoised in eval).
        Resized in float32, also under autocast."""
        weight = self.complex_weight.float()
        if not ops.config.exporting_onnx() and tuple(size) == self.grid_size:
            resized = weight.permute(2, 0, 1, 3).contiguous() if channels_first else weight
        else:
            with ops.config.autocast_off(weight):
                resized = self.memoize(
                    (tuple(size), channels_first, self.resize_mode),
                    lambda: resize_filter(weight, size, self.resize_mode, self.grid_size,
                                          channels_first).contiguous(),
                    [self.complex_weight])
        return torch.view_as_complex(resized)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``irfft2(rfft2(x) * filter)`` over the grid ``(H, W)`` of ``x`` (orthonormal FFTs)."""
        size = (x.shape[1], x.shape[2])
        if ops.fast_path_eligible(x):  # the same product over channels-first planes
            return ops.global_filter(x, self.filter_for(size, channels_first=True))
        with ops.config.autocast_off(x):
            # irfft2(rfft2(x) * filter)
            out = filter_spectrum(x.float(), self.filter_for(size), dim=(1, 2))
        return out.to(x.dtype)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` with the fast path off: the plain formulation (the public
        code's), kept to check the fast path against. Flips the process-wide
        switch for the call."""
        with ops.fast_path(False):
            return self.forward(x)
