"""GFNet and GFNet-H: one network implementation for classification and dense prediction.

``IsotropicGFNet`` and ``HierarchicalGFNet`` are the trunks: patch embedding,
position embedding and global filter blocks, returning channels-last feature
maps for any input size. The timm classifiers below add the final norm and the
head on top; the MMEngine backbones in ``gfnet_dense.models.backbones`` add one
norm per output. Parameter names follow the released ImageNet checkpoints
(Rao et al., NeurIPS 2021), so those load strictly into the classifiers.

Tensors are kept channels-last (``B, H, W, C``) between blocks: LayerNorm and
the MLP act on the last dim and the FFT runs over ``(H, W)``.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..ops import config
from .global_filter import (EvalCacheMixin, GlobalFilter, interpolate_grid, memoize_in_eval,
                            parameter_key)

# Variant tables. ``layer_scale_init=None`` means no ``gamma`` in the blocks.
GFNET_ARCHS: Dict[str, dict] = {
    'ti': dict(embed_dim=256, depth=12, drop_path_rate=0.0),
    'xs': dict(embed_dim=384, depth=12, drop_path_rate=0.0),
    's': dict(embed_dim=384, depth=19, drop_path_rate=0.15),
    'b': dict(embed_dim=512, depth=19, drop_path_rate=0.25),
}
GFNET_H_ARCHS: Dict[str, dict] = {
    'ti': dict(embed_dims=(64, 128, 256, 512), depths=(3, 3, 10, 3),
               drop_path_rate=0.1, layer_scale_init=1e-3),
    's': dict(embed_dims=(96, 192, 384, 768), depths=(3, 3, 10, 3),
              drop_path_rate=0.2, layer_scale_init=1e-5),
    'b': dict(embed_dims=(96, 192, 384, 768), depths=(3, 3, 27, 3),
              drop_path_rate=0.4, layer_scale_init=1e-6),
}
GFNET_H_PATCH_SIZES = (4, 2, 2, 2)
GFNET_PATCH_SIZE = 16


def resolve_arch(arch: Union[str, dict], table: Dict[str, dict], required: Sequence[str]) -> dict:
    """Variant settings from a name in ``table`` or a user dict with ``required`` keys."""
    if isinstance(arch, str):
        if arch.lower() not in table:
            raise ValueError(f'unknown arch {arch!r}; choose one of {sorted(table)} '
                             f'or pass a dict with keys {list(required)}')
        return dict(table[arch.lower()])
    if isinstance(arch, dict):
        missing = [k for k in required if k not in arch]
        if missing:
            raise ValueError(f'custom arch dict is missing {missing}; it needs {list(required)}')
        return dict(arch)
    raise TypeError(f'arch must be a name or a dict, got {type(arch).__name__}')


def to_2tuple(size) -> Tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))


def grid_after(size: Tuple[int, int], stride: int) -> Tuple[int, int]:
    """Token grid produced from ``size`` by a stride-``stride`` patch embedding with padding."""
    return math.ceil(size[0] / stride), math.ceil(size[1] / stride)


def resize_pos_embed(pos_embed: torch.Tensor, src_grid: Sequence[int],
                     dst_grid: Sequence[int]) -> torch.Tensor:
    """Bicubic resize of a ``(1, h*w, C)`` position embedding to ``(1, H*W, C)``."""
    if tuple(src_grid) == tuple(dst_grid):
        return pos_embed
    grid = pos_embed.float().reshape(src_grid[0], src_grid[1], -1)
    out = interpolate_grid(grid, dst_grid, 'bicubic', align_corners=False)
    return out.reshape(1, -1, pos_embed.shape[-1]).to(pos_embed.dtype)


def check_image_batch(x: torch.Tensor, in_chans: int, name: str) -> None:
    """Fail with a message naming the problem unless ``x`` is a non-empty NCHW batch."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f'{name} expects a torch.Tensor, got {type(x).__name__}')
    if x.dim() != 4:
        raise ValueError(f'{name} expects a 4-D (N, C, H, W) image batch, got a {x.dim()}-D '
                         f'tensor of shape {tuple(x.shape)}; use x[None] for a single image')
    if x.shape[1] != in_chans:
        raise ValueError(f'{name} was built for {in_chans} input channels but got '
                         f'{x.shape[1]} (input shape {tuple(x.shape)}); build it with '
                         f'in_channels={x.shape[1]} (in_chans for timm) or fix the input')
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f'{name} got an empty batch of shape {tuple(x.shape)}')


def run_blocks(blocks: Sequence[nn.Module], x: torch.Tensor, with_cp: bool) -> torch.Tensor:
    """Apply ``blocks`` in turn, each under gradient checkpointing when ``with_cp`` and
    autograd is on (``use_reentrant=False``)."""
    for block in blocks:
        if with_cp and torch.is_grad_enabled():
            x = checkpoint(block, x, use_reentrant=False)
        else:
            x = block(x)
    return x


class Mlp(nn.Module):
    """``fc1 -> GELU -> fc2`` on the last dim."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype matrix products on ``x`` run in: the autocast dtype where autocast
    is on for ``x``'s device, else ``x.dtype``."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


class _MlpFunction(torch.autograd.Function):
    """``fc2(gelu(fc1(h)))`` on ``(..., C)`` rows that keeps only ``h`` and ``fc1(h)``
    for backward.

    The GELU output (``4C`` wide, the largest activation of a block) is
    recomputed in backward instead of stored: a third less activation memory
    per block. On CPU in float32 forward and backward run in cache-sized row
    chunks (``config.mlp_row_chunk``): each chunk of ``fc1(h)`` is read back
    while still in cache, and no other ``4C``-wide temporary is allocated whole
    (a fresh large buffer costs more in page faults than the element-wise work
    on it). Under autocast it computes in the autocast dtype, like ``nn.Linear``:
    one GEMM per gradient (chunks, whose gradients add up, are float32 only).
    """

    @staticmethod
    def forward(ctx, h, w1, b1, w2, b2):
        device, dtype = h.device.type, compute_dtype(h)
        w1, b1, w2, b2 = (t.to(dtype) for t in (w1, b1, w2, b2))
        rows = h.reshape(-1, h.shape[-1]).to(dtype)
        chunk = config.mlp_row_chunk(config.decision_device(h), dtype, backward=True)
        with torch.autocast(device_type=device, enabled=False):
            pre = rows.new_empty(rows.shape[0], w1.shape[0])
            out = rows.new_empty(rows.shape[0], w2.shape[0])
            for part in config.row_chunks(rows.shape[0], w1.shape[0], chunk):
                torch.addmm(b1, rows[part], w1.t(), out=pre[part])
                torch.addmm(b2, F.gelu(pre[part]), w2.t(), out=out[part])
        ctx.save_for_backward(h, pre, w1, w2)
        ctx.chunk = chunk
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
        for part in config.row_chunks(pre.shape[0], pre.shape[1], ctx.chunk):
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


class GFBlock(EvalCacheMixin, nn.Module):
    """``x + drop_path(gamma * mlp(norm2(filter(norm1(x)))))`` on ``(B, H, W, C)``."""

    def __init__(self, dim: int, grid_size: Tuple[int, int], mlp_ratio: float = 4.0,
                 drop_path: float = 0.0, layer_scale_init: Optional[float] = None,
                 filter_resize: str = 'bicubic'):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.filter = GlobalFilter(dim, grid_size, filter_resize)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.gamma = (nn.Parameter(torch.full((dim,), layer_scale_init))
                      if layer_scale_init is not None else None)

    def _fc2_params(self, dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor,
                                                       Optional[torch.Tensor]]:
        """``fc2``'s weight and bias for an MLP computing in ``dtype``, and the layer
        scale still to apply to its output (``None``: nothing to apply).

        In float32 the layer scale is folded in, ``gamma * (W h + b) == (gamma W) h
        + gamma b``, saving an element-wise pass. In 16-bit precision it is not:
        ``gamma W`` (``1e-6 * 0.02`` in GFNet-H-B) underflows fp16 and the
        gradients of a folded weight overflow it under loss scaling, so ``gamma``
        multiplies the MLP's output in float32, as in the plain formulation.
        """
        weight, bias = self.mlp.fc2.weight, self.mlp.fc2.bias
        if self.gamma is None:
            return weight, bias, None
        if dtype == torch.float32 and weight.dtype == torch.float32:
            return weight * self.gamma[:, None], bias * self.gamma, None
        return weight, bias, self.gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The fast path; ``forward_reference`` where ``gfnet_dense.ops`` turns it off."""
        if not config.use_fast_path():
            return self.forward_reference(x)
        # the in-place inference path writes through out=, which autocast does not cast
        if not torch.is_grad_enabled() and not torch.is_autocast_enabled(x.device.type):
            return self._forward_inference(x)
        h = self.norm2(self.filter(self.norm1(x)))
        weight, bias, scale = self._fc2_params(compute_dtype(h))
        y = _MlpFunction.apply(h, self.mlp.fc1.weight, self.mlp.fc1.bias, weight, bias)
        if scale is not None:
            y = scale * y  # float32 (promoted) under autocast, as in forward_reference
        if self.training and isinstance(self.drop_path, DropPath):
            return x + self.drop_path(y)
        return x + y

    def _forward_inference(self, x: torch.Tensor) -> torch.Tensor:
        """Without autograd: the MLP writes into the filter output, in row chunks when large.

        A chunk's ``4C``-wide hidden layer stays in cache and large grids never
        materialise it whole; the only full-size tensors a block allocates are the
        norm and filter outputs (the latter becomes the result).
        """
        channels = x.shape[-1]
        out = self.filter(self.norm1(x))
        rows_out, rows_in = out.view(-1, channels), x.reshape(-1, channels)
        device = config.decision_device(x)
        parts = config.row_chunks(rows_out.shape[0], self.mlp.fc1.out_features,
                                  config.mlp_row_chunk(device, x.dtype, backward=False))
        onednn = config.use_onednn_mlp(device, x.dtype, torch.compiler.is_compiling())
        w1, b1, w2, b2, scale = self._inference_mlp_params(onednn, x.dtype,
                                                           parts[0].stop - parts[0].start)
        norm2 = self.norm2
        for part in parts:
            chunk = rows_out[part]
            h = F.layer_norm(chunk, (channels,), norm2.weight, norm2.bias, norm2.eps)
            if onednn:
                hidden = torch.ops.mkldnn._linear_pointwise(h, w1, b1, 'gelu', [], 'none')
                chunk.copy_(torch.ops.mkldnn._linear_pointwise.binary(
                    hidden, rows_in[part], w2, b2, 'add'))
                continue
            hidden = torch.ops.aten.gelu_(torch.addmm(b1, h, w1.t()))
            if scale is None:
                torch.addmm(rows_in[part], hidden, w2.t(), out=chunk).add_(b2)
            else:  # 16-bit weights: gamma scales the MLP output (see _fc2_params)
                torch.addcmul(rows_in[part], torch.addmm(b2, hidden, w2.t()), scale, out=chunk)
        return out

    def _inference_mlp_params(self, onednn: bool, dtype: torch.dtype,
                              rows: int) -> Tuple[Optional[torch.Tensor], ...]:
        """``fc1`` weight and bias, ``fc2`` weight and bias and the layer scale left
        to apply, as ``_fc2_params``.

        For oneDNN (float32 only: the layer scale is folded in) in eval the weights
        are reordered for ``rows``-row inputs (any row count works) and memoised
        until a parameter changes.
        """
        fc1 = self.mlp.fc1
        if not onednn or self.training:
            return (fc1.weight, fc1.bias) + self._fc2_params(dtype)

        def reordered():
            w2, b2, _ = self._fc2_params(torch.float32)
            reorder = torch.ops.mkldnn._reorder_linear_weight
            return reorder(fc1.weight, rows), fc1.bias, reorder(w2, rows), b2, None

        params = (fc1.weight, fc1.bias, self.mlp.fc2.weight, self.mlp.fc2.bias, self.gamma)
        key = ('mlp', rows) + tuple(parameter_key(p) for p in params if p is not None)
        return memoize_in_eval(self, key, reordered)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The plain formulation, kept to check ``forward`` against."""
        y = self.mlp(self.norm2(self.filter.forward_reference(self.norm1(x))))
        if self.gamma is not None:
            y = self.gamma * y
        return x + self.drop_path(y)


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch x patch`` conv: ``(B, C, H, W) -> (B, ceil(H/p), ceil(W/p), D)``.

    The output is a contiguous channels-last token grid.

    Inputs whose size is not a multiple of the patch are zero-padded at the
    bottom and right, so every input size is accepted.
    """

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        pad_h, pad_w = -x.shape[2] % p, -x.shape[3] % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        # a channels-last input makes the conv write channels-last, so the
        # channels-last token grid below is contiguous without a copy
        x = x.contiguous(memory_format=torch.channels_last)
        return self.proj(x).permute(0, 2, 3, 1)


class _GFNetTrunk(EvalCacheMixin, nn.Module):
    """What both trunks share: input checks, position embedding, block running."""

    in_chans: int
    pos_grid: Tuple[int, int]
    with_cp: bool = False

    def _init_weights(self, m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def check_input(self, x: torch.Tensor) -> None:
        check_image_batch(x, self.in_chans, type(self).__name__)

    def pos_embed_for(self, grid: Tuple[int, int]) -> torch.Tensor:
        """Position embedding resized to ``grid``, as ``(1, H, W, C)``."""
        key = ('pos', tuple(grid), parameter_key(self.pos_embed))
        pos = memoize_in_eval(self, key, lambda: resize_pos_embed(self.pos_embed, self.pos_grid, grid))
        return pos.reshape(1, grid[0], grid[1], -1)

    def add_pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        pos = self.pos_embed_for(x.shape[1:3])
        return x + pos if torch.is_grad_enabled() else x.add_(pos)

    def run_blocks(self, blocks: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
        return run_blocks(blocks, x, self.with_cp)

    def no_weight_decay(self) -> set:
        return {'pos_embed'}


class IsotropicGFNet(_GFNetTrunk):
    """GFNet: a stride-16 patch embedding then ``depth`` global filter blocks.

    ``forward_blocks`` maps ``(B, C, H, W)`` to ``(B, ceil(H/16), ceil(W/16), D)``
    maps taken after the requested blocks.
    """

    def __init__(self, embed_dim: int = 384, depth: int = 12, in_chans: int = 3,
                 img_size: Union[int, Sequence[int]] = 224, mlp_ratio: float = 4.0,
                 drop_path_rate: float = 0.0, filter_resize: str = 'bicubic',
                 with_cp: bool = False):
        super().__init__()
        self.in_chans, self.embed_dim, self.depth = in_chans, embed_dim, depth
        self.with_cp = with_cp
        self.pos_grid = grid_after(to_2tuple(img_size), GFNET_PATCH_SIZE)
        self.patch_embed = PatchEmbed(in_chans, embed_dim, GFNET_PATCH_SIZE)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.pos_grid[0] * self.pos_grid[1], embed_dim))
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            GFBlock(embed_dim, self.pos_grid, mlp_ratio, rates[i], None, filter_resize)
            for i in range(depth))
        trunc_normal_(self.pos_embed, std=0.02)
        self.apply(self._init_weights)

    def forward_blocks(self, x: torch.Tensor, out_indices: Sequence[int]) -> List[torch.Tensor]:
        self.check_input(x)
        x = self.add_pos_embed(self.patch_embed(x))
        outs = []
        for i, block in enumerate(self.blocks[:max(out_indices) + 1]):
            x = self.run_blocks([block], x)
            if i in out_indices:
                outs.append(x)
        return outs


def check_stage_counts(embed_dims: Sequence[int], depths: Sequence[int]) -> None:
    """Refuse GFNet-H settings without exactly one width and one depth per stage."""
    stages = len(GFNET_H_PATCH_SIZES)
    if len(embed_dims) != stages or len(depths) != stages:
        raise ValueError(
            f'GFNet-H has {stages} stages (patch sizes {GFNET_H_PATCH_SIZES}): embed_dims and '
            f'depths need {stages} entries each, got embed_dims={tuple(embed_dims)} '
            f'({len(embed_dims)}) and depths={tuple(depths)} ({len(depths)})')


class HierarchicalGFNet(_GFNetTrunk):
    """GFNet-H: four stages at strides 4, 8, 16, 32.

    ``forward_stages`` maps ``(B, C, H, W)`` to a list of channels-last maps
    ``(B, ceil(H/s), ceil(W/s), D_i)``, one per stage up to ``last_stage``.
    """

    def __init__(self, embed_dims: Sequence[int] = (96, 192, 384, 768),
                 depths: Sequence[int] = (3, 3, 10, 3), in_chans: int = 3,
                 img_size: Union[int, Sequence[int]] = 224, mlp_ratio: float = 4.0,
                 drop_path_rate: float = 0.0, layer_scale_init: Optional[float] = None,
                 filter_resize: str = 'bicubic', with_cp: bool = False):
        super().__init__()
        check_stage_counts(embed_dims, depths)
        self.in_chans, self.with_cp = in_chans, with_cp
        self.embed_dims, self.depths = tuple(embed_dims), tuple(depths)
        grids, grid = [], to_2tuple(img_size)
        for patch in GFNET_H_PATCH_SIZES:
            grid = grid_after(grid, patch)
            grids.append(grid)
        self.pos_grid = grids[0]
        in_dims = (in_chans,) + self.embed_dims[:-1]
        self.patch_embed = nn.ModuleList(
            PatchEmbed(i, o, p) for i, o, p in zip(in_dims, self.embed_dims, GFNET_H_PATCH_SIZES))
        self.pos_embed = nn.Parameter(torch.zeros(1, grids[0][0] * grids[0][1], embed_dims[0]))
        rates = iter(torch.linspace(0, drop_path_rate, sum(depths)).tolist())
        self.blocks = nn.ModuleList(
            nn.ModuleList(GFBlock(dim, grid, mlp_ratio, next(rates), layer_scale_init, filter_resize)
                          for _ in range(depth))
            for dim, depth, grid in zip(self.embed_dims, self.depths, grids))
        trunc_normal_(self.pos_embed, std=0.02)
        self.apply(self._init_weights)

    def forward_stages(self, x: torch.Tensor, last_stage: int = -1) -> List[torch.Tensor]:
        self.check_input(x)
        last_stage %= len(self.blocks)
        outs = []
        for i in range(last_stage + 1):
            x = self.patch_embed[i](x)
            if i == 0:
                x = self.add_pos_embed(x)
            x = self.run_blocks(self.blocks[i], x)
            outs.append(x)
            x = x.permute(0, 3, 1, 2)  # a channels-last NCHW view for the next conv
        return outs


class _ClassifierMixin:
    """Final LayerNorm, global average pool and linear head (timm API)."""

    num_classes: int
    num_features: int

    def _build_head(self, num_features: int, num_classes: int) -> None:
        self.num_features = self.head_hidden_size = num_features
        self.norm = nn.LayerNorm(num_features, eps=1e-6)
        self.reset_classifier(num_classes)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            self._init_weights(self.head)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(1, 2))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class GFNetClassifier(_ClassifierMixin, IsotropicGFNet):
    """GFNet ImageNet classifier: ``(B, C, H, W) -> (B, num_classes)``."""

    def __init__(self, num_classes: int = 1000, **kwargs):
        kwargs.pop('global_pool', None)
        super().__init__(**kwargs)
        self._build_head(self.embed_dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.forward_blocks(x, [self.depth - 1])[-1])


class GFNetHClassifier(_ClassifierMixin, HierarchicalGFNet):
    """GFNet-H ImageNet classifier: ``(B, C, H, W) -> (B, num_classes)``."""

    def __init__(self, num_classes: int = 1000, **kwargs):
        kwargs.pop('global_pool', None)
        super().__init__(**kwargs)
        self._build_head(self.embed_dims[-1], num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.forward_stages(x)[-1])


# --------------------------------------------------------------------------- timm
def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
    """Adapt a released / pretraining checkpoint to ``model`` (resizes filters, pos_embed)."""
    from .checkpoint import adapt_state_dict
    return adapt_state_dict(state_dict, model)


def _cfg(first_conv: str = 'patch_embed.proj') -> dict:
    return dict(url='', num_classes=1000, input_size=(3, 224, 224), pool_size=None,
                crop_pct=0.875, interpolation='bicubic', fixed_input_size=False,
                mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                first_conv=first_conv, classifier='head', license='mit')


default_cfgs = generate_default_cfgs({
    **{f'gfnet_{a}.in1k': _cfg() for a in GFNET_ARCHS},
    **{f'gfnet_h_{a}.in1k': _cfg(first_conv='patch_embed.0.proj') for a in GFNET_H_ARCHS},
})


def _create(cls, variant: str, settings: dict, pretrained: bool, **kwargs) -> nn.Module:
    return build_model_with_cfg(cls, variant, pretrained,
                                pretrained_filter_fn=checkpoint_filter_fn,
                                **dict(settings, **kwargs))


def _gfnet(arch: str, pretrained: bool, **kwargs) -> GFNetClassifier:
    return _create(GFNetClassifier, f'gfnet_{arch}', GFNET_ARCHS[arch], pretrained, **kwargs)


def _gfnet_h(arch: str, pretrained: bool, **kwargs) -> GFNetHClassifier:
    return _create(GFNetHClassifier, f'gfnet_h_{arch}', GFNET_H_ARCHS[arch], pretrained, **kwargs)


@register_model
def gfnet_ti(pretrained: bool = False, **kwargs) -> GFNetClassifier:
    return _gfnet('ti', pretrained, **kwargs)


@register_model
def gfnet_xs(pretrained: bool = False, **kwargs) -> GFNetClassifier:
    return _gfnet('xs', pretrained, **kwargs)


@register_model
def gfnet_s(pretrained: bool = False, **kwargs) -> GFNetClassifier:
    return _gfnet('s', pretrained, **kwargs)


@register_model
def gfnet_b(pretrained: bool = False, **kwargs) -> GFNetClassifier:
    return _gfnet('b', pretrained, **kwargs)


@register_model
def gfnet_h_ti(pretrained: bool = False, **kwargs) -> GFNetHClassifier:
    return _gfnet_h('ti', pretrained, **kwargs)


@register_model
def gfnet_h_s(pretrained: bool = False, **kwargs) -> GFNetHClassifier:
    return _gfnet_h('s', pretrained, **kwargs)


@register_model
def gfnet_h_b(pretrained: bool = False, **kwargs) -> GFNetHClassifier:
    return _gfnet_h('b', pretrained, **kwargs)
