"""The global filter's kernel: ``irfft2(rfft2(x) * filter)`` on channels-last tokens.

``GlobalFilter.forward`` (``gfnet_dense.layers``) writes the product plainly on a
``(B, H, W, C)`` grid; ``global_filter`` below computes the same with FFTs over
contiguous ``(H, W)`` planes and a hand-written backward. The device-dependent
choices (tiled transpose, channel groups) are ``gfnet_dense.ops.config``'s; the
autograd Function takes them in ``forward`` and keeps them for ``backward`` (which
autograd may run in another thread, outside the forward's ``force_device_type``).
"""
from typing import Callable, Optional

import torch

from . import config


def to_channels_first(x: torch.Tensor, device_type: Optional[str] = None,
                      compiling: Optional[bool] = None) -> torch.Tensor:
    """``(B, H, W, C)`` -> contiguous ``(B, C, H, W)``.

    Without autograd on CPU the transpose runs in cache-sized tiles of rows,
    faster than one strided copy of a large grid (``config.use_tiled_transpose``,
    for ``device_type`` and ``compiling``; by default ``x``'s decision device and
    whether torch.compile traces).
    """
    device_type = device_type or config.decision_device(x)
    compiling = torch.compiler.is_compiling() if compiling is None else compiling
    if not config.use_tiled_transpose(device_type, torch.is_grad_enabled(), compiling):
        return x.permute(0, 3, 1, 2).contiguous()
    batch, height, width, channels = x.shape
    rows = x.reshape(batch, height * width, channels)
    out = x.new_empty(batch, channels, height * width)
    tile = max(256, config.TRANSPOSE_TILE // channels)
    for b in range(batch):
        for start in range(0, height * width, tile):
            out[b, :, start:start + tile].copy_(rows[b, start:start + tile].t())
    return out.view(batch, channels, height, width)


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # not ``t.to(dtype)``: when that is a no-op it returns ``t`` itself, and an
    # autograd.Function output aliased that way loses its gradient under
    # torch.compile (torch 2.11)
    return t if t.dtype == dtype else t.to(dtype)


def _filter_planes(planes: torch.Tensor, filt: Optional[torch.Tensor], device_type: str,
                   compiling: bool, visit: Optional[Callable] = None) -> Optional[torch.Tensor]:
    """``irfft2(rfft2(planes) * filt)`` of float32 ``(B, C, H, W)`` planes by channel
    group (``config.fft_channel_groups`` for ``device_type`` and ``compiling``),
    returned channels-last: a float32 ``(B, H, W, C)``.

    ``filt`` is a complex ``(C, H, W//2+1)`` (``None``: no inverse transform, returns
    ``None``). ``visit(index, group, spectrum)`` sees each group's spectrum
    ``rfft2(planes[index])`` before the product.
    """
    batch, channels, height, width = planes.shape
    out = planes.new_empty(batch, height, width, channels) if filt is not None else None
    groups = config.fft_channel_groups(planes.shape, device_type, compiling)
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

    The device decisions (``decision_device``, torch.compile or not) are taken once,
    in ``forward``, and kept on ``ctx``: ``backward`` splits its transforms as
    ``forward`` did, whichever thread autograd runs it in.
    """

    @staticmethod
    def forward(ctx, x, filt):
        device_type, compiling = config.decision_device(x), torch.compiler.is_compiling()
        planes = to_channels_first(x.float(), device_type, compiling)
        conj_spectrum, keep = None, None
        if ctx.needs_input_grad[1]:
            batch, channels, height, width = planes.shape
            conj_spectrum = filt.new_empty(batch, channels, height, width // 2 + 1)

            def keep(index, group, spectrum):
                torch.conj_physical(spectrum, out=conj_spectrum[index])
        out = _filter_planes(planes, filt, device_type, compiling, keep)
        ctx.save_for_backward(conj_spectrum, filt)
        ctx.width, ctx.dtype = x.shape[2], x.dtype
        ctx.device_type, ctx.compiling = device_type, compiling
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
        planes = to_channels_first(grad_out.float(), ctx.device_type, ctx.compiling)
        grad_x = _filter_planes(planes, filt.conj() if need_x else None, ctx.device_type,
                                ctx.compiling, accumulate)
        if need_filt:
            # irfft2's adjoint counts every column that has a mirror twice
            mirrored = ctx.width - grad_filt.shape[-1]
            if mirrored > 0:
                grad_filt[..., 1:1 + mirrored].mul_(2)
        return (_cast(grad_x, ctx.dtype) if need_x else None), grad_filt


def global_filter(x: torch.Tensor, filt: torch.Tensor) -> torch.Tensor:
    """``irfft2(rfft2(x) * filt)`` over ``(H, W)`` (orthonormal FFTs) of ``(B, H, W, C)``
    tokens, for a complex ``(C, H, W//2+1)`` filter (``GlobalFilter.filter_for(...,
    channels_first=True)``).

    The transforms want the spatial dims innermost, the block wants channels
    innermost, so the input is transposed once (tiled on CPU), multiplied in the
    planes' layout and the inverse transforms are written straight into a
    channels-last output; on CPU by groups of channels. Float32 also under
    autocast; returns ``x``'s dtype.
    """
    with config.autocast_off(x):
        return _GlobalFilterFunction.apply(x, filt)
