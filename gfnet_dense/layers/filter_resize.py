"""Resizing a stored global filter to another token grid.

A filter is stored as the real view ``(h, w//2+1, C, 2)`` of its spectrum on the
grid it was trained on. ``resize_filter`` interpolates that spectrum (``bicubic`` /
``bilinear``, the public fine-tuning recipe) or keeps its pixel-space kernel
(``spatial``). With ``onnx=True`` a function gives the form an ONNX export records,
for symbolic sizes: no branch on a size, interpolation matrices computed in the
graph (``traced_interpolation_matrix``), the FFTs in their ONNX form
(``gfnet_dense.deploy.onnx_fft``).
"""
import functools
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..deploy import onnx_fft
from ..ops.config import autocast_off

#: ``bicubic`` / ``bilinear`` interpolate the complex filter in the frequency domain
#: (the public fine-tuning recipe); ``spatial`` keeps the pixel-space kernel exact.
FILTER_RESIZE_MODES = ('bicubic', 'bilinear', 'spatial')


def check_resize_mode(mode: str) -> str:
    if mode not in FILTER_RESIZE_MODES:
        raise ValueError(f'unknown filter_resize mode {mode!r}; '
                         f'choose one of {", ".join(FILTER_RESIZE_MODES)}')
    return mode


def rfft_size(size: Sequence[int]) -> Tuple[int, int]:
    """Shape of ``rfft2`` of an ``(H, W)`` grid: ``(H, W // 2 + 1)``."""
    return size[0], size[1] // 2 + 1


def infer_grid_size(filter_shape: Sequence[int]) -> Tuple[int, int]:
    """Grid of a stored ``(h, w//2+1, C, 2)`` filter; ``w`` (``2(wf-1)`` or one more) is
    taken equal to ``h`` where it can be, as in every released filter."""
    h, wf = filter_shape[0], filter_shape[1]
    return (h, h) if h // 2 + 1 == wf else (h, 2 * (wf - 1))


@functools.lru_cache(maxsize=256)
def _interpolation_matrix(src: int, dst: int, mode: str, align_corners: bool,
                          device: torch.device) -> torch.Tensor:
    """``(dst, src)`` matrix of 1-D ``mode`` interpolation (``F.interpolate`` semantics):
    the interpolated unit vectors, since torch's 2-D interpolation is separable."""
    eye = torch.eye(src, dtype=torch.float64).reshape(1, src, src, 1)
    out = F.interpolate(eye, size=(dst, 1), mode=mode, align_corners=align_corners)
    return out[0, :, :, 0].t().contiguous().float().to(device)


def _cubic_weights(t: torch.Tensor, a: float = -0.75) -> Tuple[torch.Tensor, ...]:
    """torch's bicubic convolution weights of the taps at -1, 0, 1, 2 for fraction ``t``."""
    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return far(t + 1), near(t), near(1 - t), far(2 - t)


def traced_interpolation_matrix(src: int, dst, mode: str, align_corners: bool,
                                device: torch.device) -> torch.Tensor:
    """``_interpolation_matrix`` from tensor operations on ``arange(dst)``, for a symbolic
    ``dst`` (torch's formulas: cubic source positions unclamped, tap indices clamped)."""
    i = torch.arange(dst, dtype=torch.float64, device=device)
    if align_corners:
        real = i * ((src - 1) / torch.sym_max(dst - 1, 1))
    else:
        real = (i + 0.5) * (src / dst) - 0.5
        if mode == 'bilinear':
            real = real.clamp(min=0)
    base = real.floor()
    t = real - base
    base = base.long()
    if mode == 'bicubic':
        taps = [(base + k - 1, w) for k, w in enumerate(_cubic_weights(t))]
    else:
        taps = [(base, 1 - t), (torch.clamp(base + 1, max=src - 1), t)]
    columns = torch.arange(src, device=device)
    matrix = sum(w[:, None] * (idx.clamp(0, src - 1)[:, None] == columns).to(torch.float64)
                 for idx, w in taps)
    return matrix.float()


def interpolate_grid(grid: torch.Tensor, size: Sequence[int], mode: str = 'bicubic',
                     align_corners: bool = False, onnx: bool = False) -> torch.Tensor:
    """``F.interpolate`` (no antialiasing) of a ``(..., h, w, K)`` grid to ``(..., H, W, K)``
    as two matrix products: a backward of two products, not interpolation's scatter."""
    h, w, k = grid.shape[-3:]
    matrix = traced_interpolation_matrix if onnx else _interpolation_matrix
    rows = matrix(h, size[0], mode, align_corners, grid.device).to(grid.dtype)
    cols = matrix(w, size[1], mode, align_corners, grid.device).to(grid.dtype)
    # in the grid's dtype: autocast would round weights (filters, pos_embed) to 16 bits
    with autocast_off(grid):
        narrow = torch.matmul(grid.transpose(-1, -2), cols.t()).transpose(-1, -2)  # (..., h, W, K)
        out = torch.matmul(rows, narrow.flatten(-2))  # (..., H, W*K)
    return out.unflatten(-1, (size[1], k))


def resize_filter_frequency(weight: torch.Tensor, size: Sequence[int], mode: str = 'bicubic',
                            channels_first: bool = False, onnx: bool = False) -> torch.Tensor:
    """``(h, wf, C, 2) -> (H, W//2+1, C, 2)`` for grid ``size`` (``channels_first``: a
    contiguous ``(C, H, W//2+1, 2)``): ``F.interpolate(..., align_corners=True)`` of the
    ``2C`` planes, the public fine-tuning recipe."""
    planes = weight.permute(2, 0, 1, 3) if channels_first else weight.flatten(2)
    out = interpolate_grid(planes, rfft_size(size), mode, align_corners=True, onnx=onnx)
    return out if channels_first else out.unflatten(-1, weight.shape[2:])


def _resize_circular(kernel: torch.Tensor, new_len, dim: int) -> torch.Tensor:
    """Zero-pad or crop a circularly indexed kernel along ``dim`` (index ``i`` holds
    offset ``i``, or ``i - n`` past ``(n-1)//2``): offsets that fit keep their values,
    new ones are zero. No branch on a (symbolic) length."""
    old_len = kernel.shape[dim]
    kept = torch.sym_min(old_len, new_len)
    low, high = -(kept // 2), (kept - 1) // 2
    offsets = torch.arange(low, high + 1, device=kernel.device)
    shape = list(kernel.shape)
    shape[dim] = new_len
    def wrap(length):  # offsets -> circular indices (no remainder by a symbolic length)
        return torch.where(offsets < 0, offsets + length, offsets)
    return kernel.new_zeros(shape).index_copy(
        dim, wrap(new_len), kernel.index_select(dim, wrap(old_len)))


def resize_filter_spatial(weight: torch.Tensor, size: Sequence[int],
                          source_size: Sequence[int], onnx: bool = False) -> torch.Tensor:
    """``(h, wf, C, 2) -> (H, W//2+1, C, 2)`` keeping the pixel-space kernel: the kernel
    ``irfft2(filter)`` on ``source_size`` zero-padded (or cropped) around offset 0."""
    spectrum = torch.view_as_complex(weight.contiguous())
    if onnx:
        kernel = onnx_fft.irfft2(spectrum, source_size, dim=(0, 1), norm='backward')
        kernel = _resize_circular(_resize_circular(kernel, size[0], 0), size[1], 1)
        return torch.view_as_real(onnx_fft.rfft2(kernel, dim=(0, 1), norm='backward'))
    kernel = torch.fft.irfft2(spectrum, s=tuple(source_size), dim=(0, 1), norm='backward')
    for dim in (0, 1):
        if kernel.shape[dim] != size[dim]:
            kernel = _resize_circular(kernel, size[dim], dim)
    return torch.view_as_real(torch.fft.rfft2(kernel, dim=(0, 1), norm='backward'))


def resize_filter(weight: torch.Tensor, size: Sequence[int], mode: str,
                  source_size: Optional[Sequence[int]] = None, channels_first: bool = False,
                  onnx: bool = False) -> torch.Tensor:
    """``(h, wf, C, 2) -> (H, W//2+1, C, 2)`` for grid ``size``, or a contiguous
    ``(C, H, W//2+1, 2)`` with ``channels_first``."""
    check_resize_mode(mode)
    if mode != 'spatial':
        return resize_filter_frequency(weight, size, mode, channels_first, onnx)
    out = resize_filter_spatial(weight, size, source_size or infer_grid_size(weight.shape), onnx)
    return out.permute(2, 0, 1, 3).contiguous() if channels_first else out
