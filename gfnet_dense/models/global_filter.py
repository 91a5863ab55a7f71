"""The resolution-adaptive global filter, GFNet's token mixer.

A global filter multiplies the 2-D real FFT of a token grid by a learnable complex
filter and transforms back. By the convolution theorem this is a circular
convolution over the whole grid with the spatial kernel ``irfft2(filter)``.

The filter is stored at the grid it was (pre)trained on and resized on the fly to
the grid of the current input, so weights learned at 224x224 run at any size.
"""
import functools
from collections import OrderedDict
from typing import Callable, Hashable, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

#: ``bicubic`` / ``bilinear`` interpolate the complex filter in the frequency domain
#: (the public fine-tuning recipe); ``spatial`` keeps the pixel-space kernel exact.
FILTER_RESIZE_MODES = ('bicubic', 'bilinear', 'spatial')

_CACHE_SIZE = 8  # enough for multi-scale test-time augmentation without thrashing


def check_resize_mode(mode: str) -> str:
    if mode not in FILTER_RESIZE_MODES:
        raise ValueError(f'unknown filter_resize mode {mode!r}; '
                         f'choose one of {", ".join(FILTER_RESIZE_MODES)}')
    return mode


def rfft_size(size: Sequence[int]) -> Tuple[int, int]:
    """Shape of ``rfft2`` of an ``(H, W)`` grid: ``(H, W // 2 + 1)``."""
    return size[0], size[1] // 2 + 1


def infer_grid_size(filter_shape: Sequence[int]) -> Tuple[int, int]:
    """Spatial grid a stored ``(h, w//2+1, C, 2)`` filter belongs to.

    ``w`` is ambiguous between ``2(wf-1)`` and ``2(wf-1)+1``; released filters
    are square (``w == h``), which decides it whenever possible.
    """
    h, wf = filter_shape[0], filter_shape[1]
    return (h, h) if h // 2 + 1 == wf else (h, 2 * (wf - 1))


@functools.lru_cache(maxsize=256)
def _interpolation_matrix(src: int, dst: int, mode: str, device: torch.device) -> torch.Tensor:
    """``(dst, src)`` matrix of 1-D ``mode`` interpolation with ``align_corners=True``.

    torch's bicubic / bilinear 2-D interpolation is separable, so resizing a grid
    is ``A_h @ grid @ A_w.T``: the columns of ``A`` are the interpolated unit vectors.
    """
    eye = torch.eye(src, dtype=torch.float64).reshape(1, src, src, 1)
    out = F.interpolate(eye, size=(dst, 1), mode=mode, align_corners=True)
    return out[0, :, :, 0].t().contiguous().float().to(device)


def resize_filter_frequency(weight: torch.Tensor, size: Sequence[int],
                            mode: str = 'bicubic') -> torch.Tensor:
    """Interpolate a real-view filter ``(h, wf, C, 2)`` to the rfft grid of ``size``.

    Equal to ``F.interpolate`` of the filter viewed as ``2C`` planes, computed as
    two small matrix products, which is much faster than interpolation's
    backward on CPU.
    """
    h, wf = weight.shape[:2]
    out_h, out_wf = rfft_size(size)
    rows = _interpolation_matrix(h, out_h, mode, weight.device).to(weight.dtype)
    cols = _interpolation_matrix(wf, out_wf, mode, weight.device).to(weight.dtype)
    return torch.einsum('Hh,hwcr,Ww->HWcr', rows, weight, cols)


def _resize_circular(kernel: torch.Tensor, new_len: int, dim: int) -> torch.Tensor:
    """Zero-pad or crop a circularly indexed kernel along ``dim``.

    Index ``i`` of a length-``n`` circular kernel holds offset ``i`` for
    ``i <= (n-1)//2`` and ``i - n`` otherwise; every offset that fits the new
    length keeps its value, new offsets are zero.
    """
    old_len = kernel.shape[dim]
    if old_len == new_len:
        return kernel
    low, high = -(min(old_len, new_len) // 2), (min(old_len, new_len) - 1) // 2
    offsets = torch.arange(low, high + 1, device=kernel.device)
    shape = list(kernel.shape)
    shape[dim] = new_len
    return kernel.new_zeros(shape).index_copy(
        dim, offsets % new_len, kernel.index_select(dim, offsets % old_len))


def resize_filter_spatial(weight: torch.Tensor, size: Sequence[int],
                          source_size: Sequence[int]) -> torch.Tensor:
    """Resize a real-view filter exactly: same pixel-space kernel on the new grid.

    The kernel ``irfft2(filter)`` (on ``source_size``) is zero-padded (or cropped,
    when the grid shrinks) around offset 0 and transformed again.
    """
    kernel = torch.fft.irfft2(torch.view_as_complex(weight.contiguous()),
                              s=tuple(source_size), dim=(0, 1))
    kernel = _resize_circular(kernel, size[0], dim=0)
    kernel = _resize_circular(kernel, size[1], dim=1)
    return torch.view_as_real(torch.fft.rfft2(kernel, dim=(0, 1)))


def resize_filter(weight: torch.Tensor, size: Sequence[int], mode: str,
                  source_size: Sequence[int] = None) -> torch.Tensor:
    """Resize a real-view filter ``(h, wf, C, 2)`` to ``(H, W//2+1, C, 2)`` for grid ``size``."""
    check_resize_mode(mode)
    if mode == 'spatial':
        return resize_filter_spatial(weight, size, source_size or infer_grid_size(weight.shape))
    return resize_filter_frequency(weight, size, mode)


def memoize_in_eval(module: nn.Module, key: Hashable,
                    compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``compute()``, memoised on ``module`` while it is in eval mode without autograd.

    In training (or with autograd on) the value is recomputed each call so that
    gradients reach the stored parameter. ``key`` must change whenever the
    result would (size, device, parameter version).
    """
    if module.training or torch.is_grad_enabled() or torch.compiler.is_compiling():
        return compute()
    cache = module.__dict__.setdefault('_eval_cache', OrderedDict())
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = cache[key] = compute()
    if len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


def parameter_key(param: torch.Tensor) -> tuple:
    """What identifies a parameter's current value: storage, version, dtype."""
    return param.data_ptr(), param._version, param.dtype, param.device


_TRANSPOSE_TILE = 1 << 19  # elements per transposed tile (2 MiB fp32: stays in cache)


def to_channels_first(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, C)`` -> contiguous ``(B, C, H, W)``.

    Without autograd the transpose runs in cache-sized tiles of rows, which on
    CPU is several times faster than one strided copy of a large grid.
    """
    if torch.is_grad_enabled() or x.device.type != 'cpu':
        return x.permute(0, 3, 1, 2).contiguous()
    batch, height, width, channels = x.shape
    rows = x.reshape(batch, height * width, channels)
    out = x.new_empty(batch, channels, height * width)
    tile = max(256, _TRANSPOSE_TILE // channels)
    for b in range(batch):
        for start in range(0, height * width, tile):
            out[b, :, start:start + tile].copy_(rows[b, start:start + tile].t())
    return out.view(batch, channels, height, width)


def spectral_filter(planes: torch.Tensor,
                    multiplier: Callable[[torch.Tensor], torch.Tensor],
                    reuse_input: bool = False) -> torch.Tensor:
    """``irfft2(rfft2(x) * multiplier(rfft2(x)))`` over the last two dims, in float32.

    The frequency-domain core shared by GFNet's static and AFFNet's dynamic
    filters. ``planes`` is channels-first ``(B, C, H, W)`` so both FFTs run over
    contiguous planes; they run in float32 also under autocast (cuFFT has no
    general half-precision path) and the float32 result is returned. Without
    autograd the product happens in place and, with ``reuse_input``, the inverse
    transform writes into the float32 input (large fresh buffers cost page faults).
    """
    height, width = planes.shape[-2:]
    with torch.autocast(device_type=planes.device.type, enabled=False):
        planes = planes.float()
        spectrum = torch.fft.rfft2(planes, norm='ortho')
        mask = multiplier(spectrum)
        if torch.is_grad_enabled():
            return torch.fft.irfft2(spectrum * mask, s=(height, width), norm='ortho')
        spectrum.mul_(mask)
        out = planes if reuse_input else None
        return torch.fft.irfft2(spectrum, s=(height, width), norm='ortho', out=out)


class GlobalFilter(nn.Module):
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

    def filter_for(self, size: Tuple[int, int]) -> torch.Tensor:
        """Complex filter ``(H, W//2+1, C)`` for a token grid of ``size``."""
        weight = self.complex_weight.float()
        if tuple(size) == self.grid_size:
            return torch.view_as_complex(weight)
        key = (tuple(size), self.resize_mode, parameter_key(self.complex_weight))
        resized = memoize_in_eval(self, key, lambda: resize_filter(
            weight, size, self.resize_mode, self.grid_size).contiguous())
        return torch.view_as_complex(resized)

    def channels_first_filter(self, size: Tuple[int, int]) -> torch.Tensor:
        """The filter for ``size`` as a contiguous ``(C, H, W//2+1)`` complex tensor."""
        key = ('cf', tuple(size), self.resize_mode, parameter_key(self.complex_weight))
        return memoize_in_eval(self, key,
                               lambda: self.filter_for(size).permute(2, 0, 1).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fast path: the FFTs run over contiguous ``(H, W)`` planes.

        The transforms want the spatial dims innermost, the block wants channels
        innermost, so the layer transposes once in (tiled) and once out (torch's
        fast channels-last conversion) and multiplies in the planes' layout.
        """
        size = (x.shape[1], x.shape[2])
        planes = to_channels_first(x.float())
        planes = spectral_filter(planes, lambda spectrum: self.channels_first_filter(size),
                                 reuse_input=planes.data_ptr() != x.data_ptr())
        return planes.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1) \
            .to(x.dtype)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The plain formulation (the public code's), kept to check ``forward`` against."""
        size = (x.shape[1], x.shape[2])
        with torch.autocast(device_type=x.device.type, enabled=False):
            spectrum = torch.fft.rfft2(x.float(), dim=(1, 2), norm='ortho')
            spectrum = spectrum * self.filter_for(size)
            out = torch.fft.irfft2(spectrum, s=size, dim=(1, 2), norm='ortho')
        return out.to(x.dtype)
