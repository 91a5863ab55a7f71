"""Resizing a stored global filter to another token grid.

A filter is stored as a real view ``(h, w//2+1, C, 2)`` of the complex spectrum
for the grid it was (pre)trained on; ``resize_filter`` gives it for any other
grid, either by interpolating the spectrum (``bicubic`` / ``bilinear``, the
public fine-tuning recipe) or exactly in pixel space (``spatial``).
``interpolate_grid`` is the separable interpolation also used for position
embeddings.
"""
import functools
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..ops.config import autocast_off, exporting_onnx
from ..ops.dft import irfft2, rfft2

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
    """Spatial grid a stored ``(h, w//2+1, C, 2)`` filter belongs to.

    ``w`` is ambiguous between ``2(wf-1)`` and ``2(wf-1)+1``; released filters
    are square (``w == h``), which decides it whenever possible.
    """
    h, wf = filter_shape[0], filter_shape[1]
    return (h, h) if h // 2 + 1 == wf else (h, 2 * (wf - 1))


@functools.lru_cache(maxsize=256)
def _interpolation_matrix(src: int, dst: int, mode: str, align_corners: bool,
                          device: torch.device) -> torch.Tensor:
    """``(dst, src)`` matrix of 1-D ``mode`` interpolation (``F.interpolate`` semantics).

    torch's bicubic / bilinear 2-D interpolation is separable, so resizing a grid
    is ``A_h @ grid @ A_w.T``: the columns of ``A`` are the interpolated unit vectors.
    """
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
    """``_interpolation_matrix`` from tensor operations on ``arange(dst)``, so that
    an exported graph computes it for a symbolic ``dst`` (torch's source-index and
    weight formulas: no clamp of cubic source positions, clamped tap indices)."""
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


def interpolation_matrix(src: int, dst, mode: str, align_corners: bool,
                         device: torch.device) -> torch.Tensor:
    """``(dst, src)`` interpolation matrix; traced while exporting to ONNX."""
    if exporting_onnx():
        return traced_interpolation_matrix(src, dst, mode, align_corners, device)
    return _interpolation_matrix(src, dst, mode, align_corners, device)


def interpolate_grid(grid: torch.Tensor, size: Sequence[int], mode: str = 'bicubic',
                     align_corners: bool = False) -> torch.Tensor:
    """``F.interpolate`` of a ``(..., h, w, K)`` grid to ``(..., H, W, K)``, as matrix products.

    Equal to interpolating the ``K`` planes (no antialiasing) but its backward is
    two small matrix products, where interpolation's own backward is a slow
    scatter on CPU. The last product writes the output layout directly.
    """
    h, w, k = grid.shape[-3:]
    rows = interpolation_matrix(h, size[0], mode, align_corners, grid.device).to(grid.dtype)
    cols = interpolation_matrix(w, size[1], mode, align_corners, grid.device).to(grid.dtype)
    # in the grid's dtype: autocast would round weights (filters, pos_embed) to 16 bits
    with autocast_off(grid):
        narrow = torch.matmul(grid.transpose(-1, -2), cols.t()).transpose(-1, -2)  # (..., h, W, K)
        out = torch.matmul(rows, narrow.flatten(-2))  # (..., H, W*K)
    return out.unflatten(-1, (size[1], k))


def resize_filter_frequency(weight: torch.Tensor, size: Sequence[int],
                            mode: str = 'bicubic', channels_first: bool = False) -> torch.Tensor:
    """Interpolate a real-view filter ``(h, wf, C, 2)`` to the rfft grid of ``size``.

    Equal to ``F.interpolate(..., align_corners=True)`` of the filter viewed as
    ``2C`` planes (the public fine-tuning recipe). Returns ``(H, W//2+1, C, 2)``,
    or with ``channels_first`` a contiguous ``(C, H, W//2+1, 2)``.
    """
    planes = weight.permute(2, 0, 1, 3) if channels_first else weight.flatten(2)
    out = interpolate_grid(planes, rfft_size(size), mode, align_corners=True)
    return out if channels_first else out.unflatten(-1, weight.shape[2:])


def _resize_circular(kernel: torch.Tensor, new_len: int, dim: int) -> torch.Tensor:
    """Zero-pad or crop a circularly indexed kernel along ``dim``.

    Index ``i`` of a length-``n`` circular kernel holds offset ``i`` for
    ``i <= (n-1)//2`` and ``i - n`` otherwise; every offset that fits the new
    length keeps its value, new offsets are zero.
    """
    old_len = kernel.shape[dim]
    if not exporting_onnx() and old_len == new_len:
        return kernel
    kept = torch.sym_min(old_len, new_len)  # no branch on a symbolic length when exporting
    low, high = -(kept // 2), (kept - 1) // 2
    offsets = torch.arange(low, high + 1, device=kernel.device)
    shape = list(kernel.shape)
    shape[dim] = new_len
    def wrap(length):  # offsets -> circular indices (no remainder by a symbolic length)
        return torch.where(offsets < 0, offsets + length, offsets)
    return kernel.new_zeros(shape).index_copy(
        dim, wrap(new_len), kernel.index_select(dim, wrap(old_len)))


def resize_filter_spatial(weight: torch.Tensor, size: Sequence[int],
                          source_size: Sequence[int]) -> torch.Tensor:
    """Resize a real-view filter exactly: same pixel-space kernel on the new grid.

    The kernel ``irfft2(filter)`` (on ``source_size``) is zero-padded (or cropped,
    when the grid shrinks) around offset 0 and transformed again.
    """
    kernel = irfft2(torch.view_as_complex(weight.contiguous()), source_size, dim=(0, 1),
                    norm='backward')
    kernel = _resize_circular(kernel, size[0], dim=0)
    kernel = _resize_circular(kernel, size[1], dim=1)
    return torch.view_as_real(rfft2(kernel, dim=(0, 1), norm='backward'))


def resize_filter(weight: torch.Tensor, size: Sequence[int], mode: str,
                  source_size: Optional[Sequence[int]] = None, channels_first: bool = False) -> torch.Tensor:
    """Resize a real-view filter ``(h, wf, C, 2)`` to ``(H, W//2+1, C, 2)`` for grid
    ``size``, or to a contiguous ``(C, H, W//2+1, 2)`` with ``channels_first``."""
    check_resize_mode(mode)
    if mode != 'spatial':
        return resize_filter_frequency(weight, size, mode, channels_first)
    out = resize_filter_spatial(weight, size, source_size or infer_grid_size(weight.shape))
    return out.permute(2, 0, 1, 3).contiguous() if channels_first else out
