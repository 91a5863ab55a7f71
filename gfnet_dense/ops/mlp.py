"""The GFNet block's MLP branch by fused kernels: ``x + drop_path(gamma * mlp(norm(y)))``.

``GFBlock.forward`` (``gfnet_dense.models.gfnet``) writes the branch plainly;
``residual_mlp`` computes the same:

* with autograd (training), one autograd Function that keeps only the MLP's
  input and ``fc1`` output for backward (``_MlpFunction``);
* without autograd, in place into the filter output ``y``, in row chunks on
  CPU, by two fused oneDNN linears on prepacked weights for CPU float32.

The device-dependent choices are ``gfnet_dense.ops.config``'s; the autograd
Function takes them in ``forward`` and keeps them for ``backward``.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from . import _torch_private, config


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype matrix products on ``x`` run in: the autocast dtype where autocast
    is on for ``x``'s device, else ``x.dtype``."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


class _MlpFunction(torch.autograd.Function):
    """``fc2(gelu(fc1(h)))`` on ``(..., C)`` rows that keeps only ``h`` and ``fc1(h)``
    for backward.

    The GELU output (``4C`` wide, the largest activation of a block) is
    recomputed in backward instead of stored: less activation memory per
    block. On CPU in float32 forward and backward run in cache-sized row
    chunks (``config.mlp_row_chunk``): each chunk of ``fc1(h)`` is read back
    while still in cache, and no other ``4C``-wide temporary is allocated whole
    (a fresh large buffer costs more in page faults than the element-wise work
    on it). Under autocast it computes in the autocast dtype, like ``nn.Linear``:
    one GEMM per gradient (chunks, whose gradients add up, are float32 only).
    The chunking is decided in ``forward`` and kept for ``backward`` (which autograd
    may run in another thread).
    """

    @staticmethod
    def forward(ctx, h, w1, b1, w2, b2):
        dtype = compute_dtype(h)
        w1, b1, w2, b2 = (t.to(dtype) for t in (w1, b1, w2, b2))
        rows = h.reshape(-1, h.shape[-1]).to(dtype)
        chunk = config.mlp_row_chunk(config.decision_device(h), dtype, backward=True)
        step = config.chunk_rows(rows.shape[0], w1.shape[0], chunk)
        with config.autocast_off(h):
            pre = rows.new_empty(rows.shape[0], w1.shape[0])
            out = rows.new_empty(rows.shape[0], w2.shape[0])
            for part in config.row_slices(rows.shape[0], step):
                torch.addmm(b1, rows[part], w1.t(), out=pre[part])
                torch.addmm(b2, F.gelu(pre[part]), w2.t(), out=out[part])
        ctx.save_for_backward(h, pre, w1, w2)
        ctx.step = step
        return out.view(*h.shape[:-1], w2.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        h, pre, w1, w2 = ctx.saved_tensors
        need_h, need_w1, need_b1, need_w2, need_b2 = ctx.needs_input_grad
        grad_out = grad_out.reshape(-1, grad_out.shape[-1]).to(pre.dtype)
        rows = h.reshape(-1, h.shape[-1]).to(pre.dtype)
        grad_w1, grad_w2 = torch.zeros_like(w1), torch.zeros_like(w2)
        grad_b1 = pre.new_zeros(pre.shape[1])
        grad_h = pre.new_empty(rows.shape)
        for part in config.row_slices(pre.shape[0], ctx.step):
            grad, hidden = grad_out[part], F.gelu(pre[part])
            if need_w2:
                grad_w2.addmm_(grad.t(), hidden)
            grad_pre = torch.mm(grad, w2, out=hidden)  # reuses the GELU buffer
            torch.ops.aten.gelu_backward.grad_input(grad_pre, pre[part], grad_input=grad_pre)
            if need_b1:
                grad_b1 += grad_pre.sum(0)
            if need_w1:
                grad_w1.addmm_(grad_pre.t(), rows[part])
            if need_h:
                torch.mm(grad_pre, w1, out=grad_h[part])
        return (grad_h.view(h.shape).to(h.dtype) if need_h else None,
                grad_w1 if need_w1 else None, grad_b1 if need_b1 else None,
                grad_w2 if need_w2 else None, grad_out.sum(0) if need_b2 else None)


def fc2_with_layer_scale(fc2: nn.Linear, gamma: Optional[torch.Tensor], dtype: torch.dtype
                         ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """``fc2``'s weight and bias for an MLP computing in ``dtype``, and the layer
    scale still to apply to its output (``None``: nothing to apply).

    In float32 the layer scale is folded in, ``gamma * (W h + b) == (gamma W) h
    + gamma b``, saving an element-wise pass. In 16-bit precision it is not:
    ``gamma W`` (``1e-6 * 0.02`` in GFNet-H-B) underflows fp16 and the
    gradients of a folded weight overflow it under loss scaling, so ``gamma``
    multiplies the MLP's output in float32, as in the plain formulation.
    """
    weight, bias = fc2.weight, fc2.bias
    if gamma is None:
        return weight, bias, None
    if dtype == torch.float32 and weight.dtype == torch.float32:
        return weight * gamma[:, None], bias * gamma, None
    return weight, bias, gamma


def _inference_weights(mlp: nn.Module, gamma: Optional[torch.Tensor], onednn: bool,
                       dtype: torch.dtype, rows: int) -> Tuple[Optional[torch.Tensor], ...]:
    """``fc1`` weight and bias, ``fc2`` weight and bias and the layer scale left to
    apply, as ``fc2_with_layer_scale``.

    For oneDNN (float32 only: the layer scale is folded in) in eval the weights
    are prepacked for ``rows``-row inputs (any row count works) and memoised in
    ``mlp``'s eval cache until a parameter changes.
    """
    fc1, fc2 = mlp.fc1, mlp.fc2
    if not onednn or mlp.training:
        return (fc1.weight, fc1.bias) + fc2_with_layer_scale(fc2, gamma, dtype)

    def prepacked():
        w2, b2, _ = fc2_with_layer_scale(fc2, gamma, torch.float32)
        pack = _torch_private.reorder_linear_weight
        return pack(fc1.weight, rows), fc1.bias, pack(w2, rows), b2, None

    params = [fc1.weight, fc1.bias, fc2.weight, fc2.bias, gamma]
    return mlp.memoize(('onednn', rows), prepacked, params)


def _residual_mlp_inference(x: torch.Tensor, y: torch.Tensor, norm: nn.LayerNorm,
                            mlp: nn.Module, gamma: Optional[torch.Tensor]) -> torch.Tensor:
    """``x + gamma * mlp(norm(y))`` without autograd, written into ``y``, in row chunks
    when large.

    A chunk's ``4C``-wide hidden layer stays in cache and large grids never
    materialise it whole; the block's only other full-size tensors are the
    norm and filter outputs (the latter, ``y``, becomes the result).
    """
    channels = x.shape[-1]
    rows_out, rows_in = y.view(-1, channels), x.reshape(-1, channels)
    device = config.decision_device(x)
    step = config.chunk_rows(rows_out.shape[0], mlp.fc1.out_features,
                             config.mlp_row_chunk(device, x.dtype, backward=False))
    onednn = config.use_onednn_mlp(device, x.dtype, torch.compiler.is_compiling())
    w1, b1, w2, b2, scale = _inference_weights(mlp, gamma, onednn, x.dtype, step)
    for part in config.row_slices(rows_out.shape[0], step):
        chunk = rows_out[part]
        h = F.layer_norm(chunk, (channels,), norm.weight, norm.bias, norm.eps)
        if onednn:
            hidden = _torch_private.linear_gelu(h, w1, b1)
            chunk.copy_(_torch_private.linear_add(hidden, rows_in[part], w2, b2))
            continue
        hidden = torch.ops.aten.gelu_(torch.addmm(b1, h, w1.t()))
        if scale is None:
            torch.addmm(rows_in[part], hidden, w2.t(), out=chunk).add_(b2)
        else:  # 16-bit weights: gamma scales the MLP output (see fc2_with_layer_scale)
            torch.addcmul(rows_in[part], torch.addmm(b2, hidden, w2.t()), scale, out=chunk)
    return y


def residual_mlp(x: torch.Tensor, y: torch.Tensor, norm: nn.LayerNorm, mlp: nn.Module,
                 gamma: Optional[torch.Tensor], drop_path: nn.Module) -> torch.Tensor:
    """``x + drop_path(gamma * mlp(norm(y)))`` for ``(B, H, W, C)`` tokens ``x`` and ``y``.

    ``mlp`` is a ``gfnet_dense.layers.Mlp`` (``fc1 -> GELU -> fc2``, with the eval
    cache that holds prepacked weights), ``gamma`` a ``(C,)`` layer scale or
    ``None``. Without autograd, autocast and an active ``drop_path`` the result
    is written into ``y`` (the caller's fresh filter output); otherwise the MLP
    is one autograd Function.
    """
    stochastic = drop_path.training and not isinstance(drop_path, nn.Identity)
    # the in-place inference path writes through out=, which autocast does not cast
    if not (torch.is_grad_enabled() or torch.is_autocast_enabled(x.device.type) or stochastic):
        return _residual_mlp_inference(x, y, norm, mlp, gamma)
    h = norm(y)
    weight, bias, scale = fc2_with_layer_scale(mlp.fc2, gamma, compute_dtype(h))
    out = _MlpFunction.apply(h, mlp.fc1.weight, mlp.fc1.bias, weight, bias)
    if scale is not None:
        out = scale * out  # float32 (promoted) under autocast, as in the plain formulation
    return x + drop_path(out)
