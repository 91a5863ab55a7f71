"""The resolution-adaptive global filter, GFNet's token mixer.

A global filter multiplies the 2-D real FFT of a token grid by a learnable complex
filter and transforms back. By the convolution theorem this is a circular
convolution over the whole grid with the spatial kernel ``irfft2(filter)``.

The filter is stored at the grid it was (pre)trained on and resized on the fly to
the grid of the current input, so weights learned at 224x224 run at any size.
"""
import functools
from collections import OrderedDict
from typing import Callable, Hashable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import config

#: ``bicubic`` / ``bilinear`` interpolate the complex filter in the frequency domain
#: (the public fine-tuning recipe); ``spatial`` keeps the pixel-space kernel exact.
FILTER_RESIZE_MODES = ('bicubic', 'bilinear', 'spatial')

_CACHE_SIZE = 8  # enough for multi-scale test-time augmentation without thrashing
_CACHE_ATTR = '_eval_cache'


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


def interpolate_grid(grid: torch.Tensor, size: Sequence[int], mode: str = 'bicubic',
                     align_corners: bool = False) -> torch.Tensor:
    """``F.interpolate`` of a ``(..., h, w, K)`` grid to ``(..., H, W, K)``, as matrix products.

    Equal to interpolating the ``K`` planes (no antialiasing) but its backward is
    two small matrix products, where interpolation's own backward is a slow
    scatter on CPU. The last product writes the output layout directly.
    """
    h, w, k = grid.shape[-3:]
    rows = _interpolation_matrix(h, size[0], mode, align_corners, grid.device).to(grid.dtype)
    cols = _interpolation_matrix(w, size[1], mode, align_corners, grid.device).to(grid.dtype)
    # in the grid's dtype: autocast would round weights (filters, pos_embed) to 16 bits
    with torch.autocast(device_type=grid.device.type, enabled=False):
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
                  source_size: Sequence[int] = None, channels_first: bool = False) -> torch.Tensor:
    """Resize a real-view filter ``(h, wf, C, 2)`` to ``(H, W//2+1, C, 2)`` for grid
    ``size``, or to a contiguous ``(C, H, W//2+1, 2)`` with ``channels_first``."""
    check_resize_mode(mode)
    if mode != 'spatial':
        return resize_filter_frequency(weight, size, mode, channels_first)
    out = resize_filter_spatial(weight, size, source_size or infer_grid_size(weight.shape))
    return out.permute(2, 0, 1, 3).contiguous() if channels_first else out


def memoize_in_eval(module: nn.Module, key: Hashable, compute: Callable[[], object]) -> object:
    """``compute()``, memoised on ``module`` while it is in eval mode without autograd.

    In training (or with autograd on) the value is recomputed each call so that
    gradients reach the stored parameter. ``key`` must change whenever the
    result would (size, device, parameter version). At most ``_CACHE_SIZE``
    entries per module, least recently used dropped first; ``module.train()``
    drops them all when ``module`` derives from ``EvalCacheMixin``.
    """
    if module.training or torch.is_grad_enabled() or torch.compiler.is_compiling():
        return compute()
    cache = module.__dict__.setdefault(_CACHE_ATTR, OrderedDict())
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


class EvalCacheMixin:
    """For modules that memoise with ``memoize_in_eval``: ``train(True)`` drops the cache.

    ``nn.Module.train`` calls ``train`` on every child, so a model's ``train()``
    empties the caches of all its modules.
    """

    def train(self, mode: bool = True):
        if mode:
            self.__dict__.pop(_CACHE_ATTR, None)
        return super().train(mode)


def release_eval_caches(model: nn.Module) -> None:
    """Drop the eval caches of ``model`` and all its submodules (e.g. after multi-scale
    testing, without leaving eval mode)."""
    for module in model.modules():
        module.__dict__.pop(_CACHE_ATTR, None)


def _tensors(value) -> list:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def _storage_key(t: torch.Tensor) -> tuple:
    if t.layout != torch.strided:  # e.g. oneDNN's opaque tensors: no shared storage
        return ('opaque', id(t))
    return t.device, t.untyped_storage().data_ptr()


def _nbytes(t: torch.Tensor) -> int:
    if t.layout != torch.strided:
        return t.numel() * t.element_size()
    return t.untyped_storage().nbytes()


def eval_cache_bytes(model: nn.Module) -> int:
    """Bytes held by the eval caches of ``model``'s modules.

    Counts each storage once; cached values that are parameters or buffers of
    ``model`` (a filter at its stored size, an unreordered bias) cost nothing extra.
    """
    owned = {_storage_key(t) for t in list(model.parameters()) + list(model.buffers())}
    seen, total = set(owned), 0
    for module in model.modules():
        for value in module.__dict__.get(_CACHE_ATTR, {}).values():
            for t in _tensors(value):
                key = _storage_key(t)
                if key not in seen:
                    seen.add(key)
                    total += _nbytes(t)
    return total


def to_channels_first(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, C)`` -> contiguous ``(B, C, H, W)``.

    Without autograd on CPU the transpose runs in cache-sized tiles of rows,
    several times faster than one strided copy of a large grid
    (``config.use_tiled_transpose``).
    """
    if not config.use_tiled_transpose(config.decision_device(x), torch.is_grad_enabled(),
                                      torch.compiler.is_compiling()):
        return x.permute(0, 3, 1, 2).contiguous()
    batch, height, width, channels = x.shape
    rows = x.reshape(batch, height * width, channels)
    out = x.new_empty(batch, channels, height * width)
    tile = max(256, config.TRANSPOSE_TILE // channels)
    for b in range(batch):
        for start in range(0, height * width, tile):
            out[b, :, start:start + tile].copy_(rows[b, start:start + tile].t())
    return out.view(batch, channels, height, width)


def spectral_filter(planes: torch.Tensor,
                    multiplier: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``irfft2(rfft2(x) * multiplier(rfft2(x)))`` over the last two dims, in float32.

    The frequency-domain core of AFFNet's dynamic filter (GFNet's static filter
    has its own backward, ``_GlobalFilterFunction``). ``planes`` is channels-first
    ``(B, C, H, W)`` so both FFTs run over contiguous planes; they run in float32
    also under autocast (cuFFT has no general half-precision path) and the
    float32 result is returned. Without autograd the product happens in place.
    """
    height, width = planes.shape[-2:]
    with torch.autocast(device_type=planes.device.type, enabled=False):
        spectrum = torch.fft.rfft2(planes.float(), norm='ortho')
        mask = multiplier(spectrum)
        spectrum = spectrum * mask if torch.is_grad_enabled() else spectrum.mul_(mask)
        return torch.fft.irfft2(spectrum, s=(height, width), norm='ortho')


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # not ``t.to(dtype)``: when that is a no-op it returns ``t`` itself, and an
    # autograd.Function output aliased that way loses its gradient under
    # torch.compile (torch 2.11)
    return t if t.dtype == dtype else t.to(dtype)


def _filter_planes(planes: torch.Tensor, filt: Optional[torch.Tensor],
                   visit: Optional[Callable] = None) -> Optional[torch.Tensor]:
    """``irfft2(rfft2(planes) * filt)`` of float32 ``(B, C, H, W)`` planes by channel
    group (``config.fft_channel_groups``), returned channels-last: a float32
    ``(B, H, W, C)``.

    ``filt`` is a complex ``(C, H, W//2+1)`` (``None``: no inverse transform, returns
    ``None``). ``visit(index, group, spectrum)`` sees each group's spectrum
    ``rfft2(planes[index])`` before the product.
    """
    batch, channels, height, width = planes.shape
    out = planes.new_empty(batch, height, width, channels) if filt is not None else None
    groups = config.fft_channel_groups(planes.shape, config.decision_device(planes),
                                       torch.compiler.is_compiling())
    for image, group in groups:
        index = (slice(None) if image is None else image, group)
        spectrum = torch.fft.rfft2(planes[index], norm='ortho')
        if visit is not None:
            visit(index, group, spectrum)
        if filt is not None:
            result = torch.fft.irfft2(spectrum.mul_(filt[group]), s=(height, width), norm='ortho')
            out_index = (slice(None) if image is None else image, Ellipsis, group)
            out[out_index].copy_(result.movedim(-3, -1))
    return out


class _GlobalFilterFunction(torch.autograd.Function):
    """``irfft2(rfft2(x) * filter)`` on a channels-last grid, with a hand-written backward.

    ``x`` is ``(B, H, W, C)``, ``filter`` a complex ``(C, H, W//2+1)``. The layer
    is a circular convolution with a real kernel, so its input gradient is the
    same layer with the conjugate filter, ``irfft2(rfft2(g) * conj(filter))``:
    one real FFT pair in backward where autograd's generic path transforms the
    full (two-sided) spectrum and pads, copies and conjugates along the way.
    Only the input spectrum is kept for backward (the filter's gradient is
    ``sum_b rfft2(g) * conj(rfft2(x))``), stored conjugated so that backward
    multiplies without a conjugate view.
    """

    @staticmethod
    def forward(ctx, x, filt):
        planes = to_channels_first(x.float())
        conj_spectrum, keep = None, None
        if ctx.needs_input_grad[1]:
            batch, channels, height, width = planes.shape
            conj_spectrum = filt.new_empty(batch, channels, height, width // 2 + 1)

            def keep(index, group, spectrum):
                torch.conj_physical(spectrum, out=conj_spectrum[index])
        out = _filter_planes(planes, filt, keep)
        ctx.save_for_backward(conj_spectrum, filt)
        ctx.width, ctx.dtype = x.shape[2], x.dtype
        return _cast(out, x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        conj_spectrum, filt = ctx.saved_tensors
        need_x, need_filt = ctx.needs_input_grad
        grad_filt, accumulate = None, None
        if need_filt:
            grad_filt = filt.new_zeros(filt.shape)

            def accumulate(index, group, spectrum):
                product = spectrum * conj_spectrum[index]
                grad_filt[group] += product.sum(0) if product.dim() == 4 else product
        planes = to_channels_first(grad_out.float())
        grad_x = _filter_planes(planes, filt.conj() if need_x else None, accumulate)
        if need_filt:
            # irfft2's adjoint counts every column that has a mirror twice
            mirrored = ctx.width - grad_filt.shape[-1]
            if mirrored > 0:
                grad_filt[..., 1:1 + mirrored].mul_(2)
        return (_cast(grad_x, ctx.dtype) if need_x else None), grad_filt


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
        if tuple(size) == self.grid_size:
            resized = weight.permute(2, 0, 1, 3).contiguous() if channels_first else weight
        else:
            key = (tuple(size), channels_first, self.resize_mode,
                   parameter_key(self.complex_weight))
            with torch.autocast(device_type=weight.device.type, enabled=False):
                resized = memoize_in_eval(self, key, lambda: resize_filter(
                    weight, size, self.resize_mode, self.grid_size, channels_first).contiguous())
        return torch.view_as_complex(resized)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fast path: the FFTs run over contiguous ``(H, W)`` planes.

        The transforms want the spatial dims innermost, the block wants channels
        innermost, so the layer transposes once in (tiled on CPU), multiplies in
        the planes' layout and writes the inverse transforms straight into a
        channels-last output, in float32 also under autocast; on CPU by groups
        of channels (``_filter_planes``). See ``_GlobalFilterFunction``. With
        the fast path off (``gfnet_dense.ops.fast_path``) this is ``forward_reference``.
        """
        if not config.use_fast_path():
            return self.forward_reference(x)
        filt = self.filter_for((x.shape[1], x.shape[2]), channels_first=True)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return _GlobalFilterFunction.apply(x, filt)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The plain formulation (the public code's), kept to check ``forward`` against."""
        size = (x.shape[1], x.shape[2])
        with torch.autocast(device_type=x.device.type, enabled=False):
            spectrum = torch.fft.rfft2(x.float(), dim=(1, 2), norm='ortho')
            spectrum = spectrum * self.filter_for(size)
            out = torch.fft.irfft2(spectrum, s=size, dim=(1, 2), norm='ortho')
        return out.to(x.dtype)
