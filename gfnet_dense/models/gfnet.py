"""GFNet and GFNet-H (Rao et al., NeurIPS 2021) for classification and dense prediction.

``IsotropicGFNet`` and ``HierarchicalGFNet`` are the trunks (any input size, timm's
feature API); the timm classifiers add the final norm and the head, the MMEngine
backbones (``gfnet_dense.mm.backbones``) a norm per output. Parameter names follow
the released checkpoints. Tokens stay channels-last ``(B, H, W, C)`` between
blocks: LayerNorm and the MLP act on the last dim, the FFT over ``(H, W)``.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from timm.layers import DropPath, calculate_drop_path_rates, to_2tuple, trunc_normal_
from timm.models import generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import nn

from .. import ops
from ..layers import (EvalCacheMixin, ForwardReferenceMixin, GlobalFilter, Mlp, PatchEmbed,
                      check_image_batch, grid_after, resize_pos_embed, run_blocks)
from .features import check_output_fmt, to_output_fmt
from .heads import ClassifierMixin, build_classifier, factory_kwargs

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

# one call in FX graphs (any tracer: torchvision's create_feature_extractor, timm's FX
# features), made when the graph runs and the token grid is known
torch.fx.wrap('resize_pos_embed')


class GFBlock(ForwardReferenceMixin, nn.Module):
    """``x + drop_path(gamma * mlp(norm2(filter(norm1(x)))))`` on ``(B, H, W, C)`` tokens."""

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.filter(self.norm1(x))
        if ops.fast_path_eligible(x):  # fast: the MLP branch by fused kernels
            return ops.residual_mlp(x, y, self.norm2, self.mlp, self.gamma, self.drop_path)
        y = self.mlp(self.norm2(y))  # plain
        if self.gamma is not None:
            y = self.gamma * y
        return x + self.drop_path(y)


def default_feature_blocks(depth: int) -> Tuple[int, ...]:
    """The blocks ending each quarter of an isotropic GFNet: its default feature levels."""
    return tuple(sorted({max(0, (k + 1) * depth // 4 - 1) for k in range(4)}))


class _GFNetTrunk(EvalCacheMixin, nn.Module):
    """What both trunks share: input checks, position embedding, block running."""

    output_fmt = 'NHWC'  # of forward_features
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
        """Position embedding resized to ``grid``, as ``(1, H, W, C)`` (memoised in eval)."""
        if ops.config.exporting_onnx():  # export: resized in the graph, at any grid
            pos = resize_pos_embed(self.pos_embed, self.pos_grid, grid, onnx=True)
        else:
            pos = self.memoize(('pos', tuple(grid)),
                               lambda: resize_pos_embed(self.pos_embed, self.pos_grid, grid),
                               [self.pos_embed])
        return pos.reshape(1, grid[0], grid[1], -1)

    def add_pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        """``x + pos_embed`` for ``(B, H, W, C)`` tokens; in place on the fast path
        without autograd (``x`` is the patch embedding's fresh output)."""
        pos = self.pos_embed_for((x.shape[1], x.shape[2]))
        in_place = ops.fast_path_eligible(x) and not torch.is_grad_enabled()
        return x.add_(pos) if in_place else x + pos

    def run_blocks(self, blocks: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
        return run_blocks(blocks, x, self.with_cp)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Gradient checkpointing per block (``use_reentrant=False``)."""
        self.with_cp = enable

    def no_weight_decay(self) -> set:
        return {'pos_embed'}


class IsotropicGFNet(_GFNetTrunk):
    """GFNet: a stride-16 patch embedding then ``depth`` global filter blocks.

    Every block is a feature level, as in timm's ViT: ``forward_intermediates``
    gives ``(B, D, ceil(H/16), ceil(W/16))`` maps after the chosen blocks.
    ``final_norm`` adds the classifiers' LayerNorm (else ``norm`` is an identity).
    """

    def __init__(self, embed_dim: int = 384, depth: int = 12, in_chans: int = 3,
                 img_size: Union[int, Sequence[int]] = 224, mlp_ratio: float = 4.0,
                 drop_path_rate: float = 0.0, filter_resize: str = 'bicubic',
                 with_cp: bool = False, final_norm: bool = False):
        super().__init__()
        self.in_chans, self.embed_dim, self.depth = in_chans, embed_dim, depth
        self.with_cp = with_cp
        self.pos_grid = grid_after(to_2tuple(img_size), GFNET_PATCH_SIZE)
        self.patch_embed = PatchEmbed(in_chans, embed_dim, GFNET_PATCH_SIZE)
        num_patches = self.pos_grid[0] * self.pos_grid[1]
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, embed_dim))
        rates = calculate_drop_path_rates(drop_path_rate, depth)
        self.blocks = nn.ModuleList(
            GFBlock(embed_dim, self.pos_grid, mlp_ratio, rates[i], None, filter_resize)
            for i in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6) if final_norm else nn.Identity()
        self.feature_info = [dict(num_chs=embed_dim, reduction=GFNET_PATCH_SIZE,
                                  module=f'blocks.{i}') for i in range(depth)]
        trunc_normal_(self.pos_embed, std=0.02)
        self.apply(self._init_weights)

    def group_matcher(self, coarse: bool = False) -> dict:
        return dict(stem=r'^pos_embed|^patch_embed',
                    blocks=[(r'^blocks\.(\d+)', None), (r'^norm\.', (99999,))])  # as ViT

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, ceil(H/16), ceil(W/16), D)``: every block, then ``norm``."""
        self.check_input(x)
        x = self.add_pos_embed(self.patch_embed(x))
        return self.norm(self.run_blocks(self.blocks, x))

    def forward_intermediates(
            self, x: torch.Tensor, indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False, stop_early: bool = False, output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The outputs of the blocks in ``indices`` (``None``: all, ``n``: the last
        ``n``, a list: those, negative from the end), each ``(B, D, h, w)`` with
        ``h, w = ceil(H/16), ceil(W/16)`` (``output_fmt='NHWC'``: ``(B, h, w, D)``),
        after ``norm`` when asked. ``stop_early`` runs no block past the last one
        taken. Returns them, or ``(final features (B, h, w, D), them)``.
        """
        check_output_fmt(output_fmt)
        take, last = feature_take_indices(len(self.blocks), indices)
        self.check_input(x)
        x = self.add_pos_embed(self.patch_embed(x))
        intermediates = []
        for i, block in enumerate(self.blocks[:last + 1] if stop_early else self.blocks):
            x = self.run_blocks([block], x)
            if i in take:
                intermediates.append(to_output_fmt(self.norm(x) if norm else x, 'NHWC', output_fmt))
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates


def check_stage_counts(embed_dims: Sequence[int], depths: Sequence[int]) -> None:
    """Refuse GFNet-H settings without exactly one width and one depth per stage."""
    stages = len(GFNET_H_PATCH_SIZES)
    if len(embed_dims) != stages or len(depths) != stages:
        raise ValueError(
            f'GFNet-H has {stages} stages (patch sizes {GFNET_H_PATCH_SIZES}): embed_dims and '
            f'depths need {stages} entries each, got embed_dims={tuple(embed_dims)} '
            f'({len(embed_dims)}) and depths={tuple(depths)} ({len(depths)})')


class HierarchicalGFNet(_GFNetTrunk):
    """GFNet-H: four stages at strides 4, 8, 16, 32, each a patch embedding (the
    first adds the position embedding) and global filter blocks.

    Every stage is a feature level: ``forward_intermediates`` gives
    ``(B, D_i, ceil(H/s_i), ceil(W/s_i))`` maps. ``final_norm`` adds the
    classifiers' LayerNorm on the last stage (else ``norm`` is an identity).
    """

    def __init__(self, embed_dims: Sequence[int] = (96, 192, 384, 768),
                 depths: Sequence[int] = (3, 3, 10, 3), in_chans: int = 3,
                 img_size: Union[int, Sequence[int]] = 224, mlp_ratio: float = 4.0,
                 drop_path_rate: float = 0.0, layer_scale_init: Optional[float] = None,
                 filter_resize: str = 'bicubic', with_cp: bool = False,
                 final_norm: bool = False):
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
        rates = iter(calculate_drop_path_rates(drop_path_rate, sum(depths)))
        self.blocks = nn.ModuleList(
            nn.ModuleList(GFBlock(dim, grid, mlp_ratio, next(rates), layer_scale_init,
                                  filter_resize) for _ in range(depth))
            for dim, depth, grid in zip(self.embed_dims, self.depths, grids))
        self.norm = nn.LayerNorm(self.embed_dims[-1], eps=1e-6) if final_norm else nn.Identity()
        self.feature_info = [dict(num_chs=dim, reduction=math.prod(GFNET_H_PATCH_SIZES[:i + 1]),
                                  module=f'blocks.{i}') for i, dim in enumerate(self.embed_dims)]
        trunc_normal_(self.pos_embed, std=0.02)
        self.apply(self._init_weights)

    def group_matcher(self, coarse: bool = False) -> dict:
        """Stem: the first patch embedding and ``pos_embed``; then stage by stage, a
        stage's patch embedding (its down-sampling) grouped with its first block."""
        if coarse:  # one group per stage
            blocks = [(r'^patch_embed\.(\d+)', None), (r'^blocks\.(\d+)', None)]
        else:  # (stage, block)
            blocks = [(r'^patch_embed\.(\d+)', (0,)), (r'^blocks\.(\d+)\.(\d+)', None)]
        return dict(stem=r'^pos_embed|^patch_embed\.0\.',
                    blocks=blocks + [(r'^norm\.', (99999,))])  # with the last block

    def forward_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Stage ``i`` on the image (``i = 0``) or the previous stage's ``(B, h, w, C)``
        tokens: ``(B, ceil(H/s_i), ceil(W/s_i), D_i)`` tokens."""
        x = self.patch_embed[i](x if i == 0 else x.permute(0, 3, 1, 2))
        if i == 0:
            x = self.add_pos_embed(x)
        return self.run_blocks(self.blocks[i], x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, ceil(H/32), ceil(W/32), D_3)``: every stage, then ``norm``."""
        self.check_input(x)
        for i in range(len(self.blocks)):
            x = self.forward_stage(i, x)
        return self.norm(x)

    def forward_intermediates(
            self, x: torch.Tensor, indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False, stop_early: bool = False, output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The outputs of the stages in ``indices`` (``None``: all, ``n``: the last
        ``n``, a list: those, negative from the end), each ``(B, D_i, ceil(H/s_i),
        ceil(W/s_i))`` (``output_fmt='NHWC'``: channels last); ``norm`` applies to the
        last stage's. ``stop_early`` runs no stage past the last one taken. Returns
        them, or ``(final features (B, h, w, D), them)``.
        """
        check_output_fmt(output_fmt)
        take, last = feature_take_indices(len(self.blocks), indices)
        self.check_input(x)
        last_stage = len(self.blocks) - 1
        intermediates = []
        for i in range(last + 1 if stop_early else len(self.blocks)):
            x = self.forward_stage(i, x)
            if i in take:
                y = self.norm(x) if norm and i == last_stage else x
                intermediates.append(to_output_fmt(y, 'NHWC', output_fmt))
        if intermediates_only:
            return intermediates
        return (self.norm(x) if i == last_stage else x), intermediates


class GFNetClassifier(ClassifierMixin, IsotropicGFNet):
    """GFNet ImageNet classifier: ``(B, C, H, W) -> (B, num_classes)``."""

    @factory_kwargs
    def __init__(self, num_classes: int = 1000, global_pool: str = 'avg', **kwargs):
        super().__init__(final_norm=True, **kwargs)
        self._build_head(self.embed_dim, num_classes, global_pool)

    def _init_head(self, head: nn.Linear) -> None:
        self._init_weights(head)

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True) -> List[int]:
        """Drop the blocks after the last of ``indices`` (and ``norm`` / the head as
        asked); returns the blocks ``indices`` name, counted from the start."""
        take, last = feature_take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[:last + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return take


class GFNetHClassifier(ClassifierMixin, HierarchicalGFNet):
    """GFNet-H ImageNet classifier: ``(B, C, H, W) -> (B, num_classes)``."""

    @factory_kwargs
    def __init__(self, num_classes: int = 1000, global_pool: str = 'avg', **kwargs):
        super().__init__(final_norm=True, **kwargs)
        self._build_head(self.embed_dims[-1], num_classes, global_pool)

    def _init_head(self, head: nn.Linear) -> None:
        self._init_weights(head)

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True) -> List[int]:
        """Drop the stages after the last of ``indices`` (with them ``norm`` and the
        head, which fit the last stage only), and ``norm`` / the head as asked;
        returns the stages ``indices`` name, counted from the start."""
        take, last = feature_take_indices(len(self.blocks), indices)
        prune_end = last < len(self.blocks) - 1
        self.patch_embed, self.blocks = self.patch_embed[:last + 1], self.blocks[:last + 1]
        if prune_norm or prune_end:
            self.norm = nn.Identity()
        if prune_end:
            self.num_features = self.head_hidden_size = self.feature_info[last]['num_chs']
        if prune_head or prune_end:
            self.reset_classifier(0)
        return take


# --------------------------------------------------------------------------- timm
def _cfg(pool_size: Tuple[int, int], first_conv: str) -> dict:
    return dict(url='', num_classes=1000, input_size=(3, 224, 224), pool_size=pool_size,
                crop_pct=0.875, interpolation='bicubic', fixed_input_size=False,
                mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                first_conv=first_conv, classifier='head', license='mit')


default_cfgs = generate_default_cfgs({
    **{f'gfnet_{a}.in1k': _cfg((14, 14), 'patch_embed.proj') for a in GFNET_ARCHS},  # stride 16
    **{f'gfnet_h_{a}.in1k': _cfg((7, 7), 'patch_embed.0.proj') for a in GFNET_H_ARCHS},  # 32
})


def _gfnet(arch: str, pretrained: bool, **kwargs) -> GFNetClassifier:
    depth = kwargs.get('depth', GFNET_ARCHS[arch]['depth'])
    return build_classifier(GFNetClassifier, f'gfnet_{arch}', pretrained,
                            default_feature_blocks(depth), **dict(GFNET_ARCHS[arch], **kwargs))


def _gfnet_h(arch: str, pretrained: bool, **kwargs) -> GFNetHClassifier:
    return build_classifier(GFNetHClassifier, f'gfnet_h_{arch}', pretrained,
                            range(len(GFNET_H_PATCH_SIZES)), **dict(GFNET_H_ARCHS[arch], **kwargs))


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
