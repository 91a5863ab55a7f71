"""GFNet / GFNet-H / AFFNet as OpenMMLab backbones (MMSegmentation, MMDetection).

Registered in MMEngine's root ``MODELS`` registry, so ``type='GFNetH'`` builds
under ``default_scope='mmseg'`` and ``'mmdet'`` alike. The networks themselves
are the ones in ``gfnet.py`` / ``affnet.py`` (shared with the timm classifiers);
these classes add output norms (GFNet), NCHW outputs, freezing and checkpoint
loading.
"""
import copy
import numbers
import re
import warnings
from typing import Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..checkpoints import adapt_state_dict, load_into, read_checkpoint, select_prefix
from ..models.affnet import AFFNET_ARCHS, AFFNetTrunk
from ..models.gfnet import GFNET_ARCHS, GFNET_H_ARCHS, HierarchicalGFNet, IsotropicGFNet
from ..models.variants import resolve_arch
from .arg_checks import check_backbone_args


def _pretrained_init_cfg(init_cfg, pretrained):
    if pretrained is not None:
        if init_cfg is not None:
            raise ValueError('give either init_cfg or the deprecated pretrained, not both')
        warnings.warn('pretrained is deprecated, use init_cfg=dict(type="Pretrained", '
                      'checkpoint=...)', DeprecationWarning)
        return dict(type='Pretrained', checkpoint=pretrained)
    return copy.deepcopy(init_cfg)


def _variant_settings(arch, table, required, drop_path_rate: Optional[float]) -> dict:
    settings = resolve_arch(arch, table, required=required)
    if drop_path_rate is not None:
        settings['drop_path_rate'] = drop_path_rate
    return settings


def normalize_indices(indices: Union[int, Sequence[int]], count: int, what: str) -> Tuple[int, ...]:
    """``out_indices`` (one or several, negative from the end) as sorted distinct
    indices in ``[0, count)``; fails naming ``what`` is indexed."""
    indices = (indices,) if isinstance(indices, numbers.Integral) else tuple(indices)
    if not indices:
        raise ValueError(f'out_indices must name at least one {what}')
    out = []
    for i in indices:
        if not -count <= i < count:
            raise ValueError(f'out_indices entry {i} is out of range for {count} {what}s')
        out.append(int(i) % count)
    return tuple(sorted(set(out)))


def _freeze(*modules) -> None:
    for m in modules:
        if isinstance(m, nn.Parameter):
            m.requires_grad_(False)
        else:
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


class MMBackboneMixin:
    """Freezing, ``norm_eval``, ``train()`` and ``init_cfg`` loading for every backbone
    (``TimmFeatures`` included)."""

    out_indices: Tuple[int, ...]
    frozen_stages: int
    norm_eval: bool

    # weights of a classifier checkpoint that the backbone does not have
    _classifier_prefixes = ('head.', 'norm.')

    def _setup(self, out_indices, out_dims, frozen_stages, norm_eval, init_cfg, pretrained):
        """``out_dims``: channels per output for one LayerNorm each, or None for no norms."""
        self.init_cfg = _pretrained_init_cfg(init_cfg, pretrained)
        self.out_indices, self.frozen_stages, self.norm_eval = out_indices, frozen_stages, norm_eval
        for i in out_indices if out_dims is not None else ():
            self.add_module(f'norm{i}', nn.LayerNorm(out_dims[i], eps=1e-6))
        # Parts after the last output never run: freeze them so DDP needs no
        # find_unused_parameters.
        for module in self._unused_modules():
            _freeze(module)
        self._freeze_stages()

    def _unused_modules(self):
        return []

    def _normed_outputs(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """The trunk's ``out_indices`` maps, each through its own LayerNorm, as NCHW views
        of channels-last memory."""
        maps = self.forward_intermediates(x, list(self.out_indices), stop_early=True,
                                          output_fmt='NHWC', intermediates_only=True)
        return tuple(getattr(self, f'norm{i}')(m).permute(0, 3, 1, 2)
                     for i, m in zip(self.out_indices, maps))

    def _frozen_modules(self):
        raise NotImplementedError

    def _freeze_stages(self) -> None:
        _freeze(*self._frozen_modules())

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        for module in self._unused_modules():
            module.eval()
        if mode and self.norm_eval:
            # AFFNet's BatchNorms; GFNet has only LayerNorm (no running statistics)
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def _output_norms_from_checkpoint(self) -> dict:
        """The released final ``norm`` feeds the last stage: start that output norm from it."""
        return {'norm.': f'norm{self.out_indices[-1]}.'} if self._last_is_final() else {}

    def init_weights(self) -> None:
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            self.load_pretrained(**{k: v for k, v in cfg.items() if k != 'type'})
            self._is_init = True
        else:
            super().init_weights()

    def load_pretrained(self, checkpoint: str, prefix: Optional[str] = None,
                        map_location='cpu', **unsupported) -> None:
        """``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=..., map_location=...)``.

        Any released, pretraining, MMEngine or safetensors checkpoint (file or URL);
        ``prefix`` takes the weights under it (e.g. ``'backbone.'``), as MMEngine's
        ``PretrainedInit`` does. Output norms that the checkpoint has for outputs
        this backbone does not return are dropped; every other misfit fails.
        """
        if unsupported:
            raise ValueError(f'init_cfg of type Pretrained got unsupported keys '
                             f'{sorted(unsupported)}; it takes checkpoint, prefix, map_location')
        state = read_checkpoint(checkpoint, map_location)
        if prefix:
            state = select_prefix(state, prefix, checkpoint)
        rename = self._output_norms_from_checkpoint()
        state = adapt_state_dict(state, self, rename=rename,
                                 drop_prefixes=self._classifier_prefixes)
        own = set(self.state_dict())
        # a segmentor's backbone loaded with other out_indices: keep the norms that exist
        state = {k: v for k, v in state.items()
                 if k in own or not re.match(r'norm\d+\.', k)}
        out_norms = {k for k in own if k.split('.')[0] in
                     {f'norm{i}' for i in self.out_indices}}
        load_into(self, state, allowed_missing=out_norms)


@MODELS.register_module()
class GFNetH(MMBackboneMixin, HierarchicalGFNet, BaseModule):
    """GFNet-H backbone: NCHW maps at strides 4/8/16/32 for any input size.

    Args:
        arch: ``'ti'``, ``'s'``, ``'b'`` or a dict with ``embed_dims``, ``depths``
            (and optionally ``layer_scale_init``, ``drop_path_rate``).
        in_channels: image channels.
        pretrain_img_size: the size the filters and ``pos_embed`` are stored for.
        out_indices: stages to return; each gets its own LayerNorm.
        frozen_stages: ``-1`` none, ``0`` the stem (first patch embedding and
            ``pos_embed``), ``k`` the stem and stages ``0..k-1``.
        norm_eval: put BatchNorm layers in eval mode during training (GFNet-H has
            only LayerNorm, so this affects user-added BatchNorm only).
        with_cp: gradient checkpointing per block (``use_reentrant=False``).
        drop_path_rate: stochastic depth; defaults to the variant's ImageNet value.
        filter_resize: ``'bicubic'``, ``'bilinear'`` or ``'spatial'``.
        init_cfg: ``dict(type='Pretrained', checkpoint=path)`` loads a released,
            pretraining or MMEngine checkpoint, resizing filters and ``pos_embed``.

    Shape: ``(N, C, H, W) -> tuple of (N, D_i, ceil(H/s_i), ceil(W/s_i))``, in
    channels-last memory format (what convolutions of the neck run fastest on;
    call ``.contiguous()`` where a consumer needs NCHW memory).
    """

    def __init__(self, arch: Union[str, dict] = 's', in_channels: int = 3,
                 pretrain_img_size: Union[int, Sequence[int]] = 224,
                 out_indices: Sequence[int] = (0, 1, 2, 3), frozen_stages: int = -1,
                 norm_eval: bool = False, with_cp: bool = False,
                 drop_path_rate: Optional[float] = None, filter_resize: str = 'bicubic',
                 mlp_ratio: float = 4.0, init_cfg: Optional[dict] = None,
                 pretrained: Optional[str] = None):
        check_backbone_args('GFNetH', dict(
            arch=arch, in_channels=in_channels, pretrain_img_size=pretrain_img_size,
            out_indices=out_indices, frozen_stages=frozen_stages, norm_eval=norm_eval,
            with_cp=with_cp, drop_path_rate=drop_path_rate, filter_resize=filter_resize,
            mlp_ratio=mlp_ratio))
        settings = _variant_settings(arch, GFNET_H_ARCHS, ('embed_dims', 'depths'), drop_path_rate)
        super().__init__(in_chans=in_channels, img_size=pretrain_img_size, mlp_ratio=mlp_ratio,
                         filter_resize=filter_resize, with_cp=with_cp, **settings)
        self.arch = arch
        num_stages = len(self.depths)
        self._setup(normalize_indices(out_indices, num_stages, 'stage'), self.embed_dims,
                    frozen_stages, norm_eval, init_cfg, pretrained)

    def _last_is_final(self) -> bool:
        return self.out_indices[-1] == len(self.depths) - 1

    def _unused_modules(self):
        last = self.out_indices[-1]
        return [m for i in range(last + 1, len(self.depths))
                for m in (self.patch_embed[i], self.blocks[i])]

    def _frozen_modules(self):
        if self.frozen_stages < 0:
            return []
        modules = [self.patch_embed[0], self.pos_embed]
        for i in range(self.frozen_stages):
            modules += [self.patch_embed[i], self.blocks[i]]
            if i in self.out_indices:
                modules.append(getattr(self, f'norm{i}'))
        return modules

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return self._normed_outputs(x)


@MODELS.register_module()
class GFNet(MMBackboneMixin, IsotropicGFNet, BaseModule):
    """Isotropic GFNet backbone: stride-16 NCHW maps taken after chosen blocks.

    Pair it with a multi-level neck (``MultiLevelNeck`` in MMSeg) to build a
    feature pyramid. ``out_indices`` are block indices (default: the blocks
    ending each quarter of the depth); ``frozen_stages`` ``k`` freezes the patch
    embedding, ``pos_embed`` and the first ``k`` blocks. Other arguments as
    ``GFNetH``.

    Shape: ``(N, C, H, W) -> tuple of (N, D, ceil(H/16), ceil(W/16))``, channels-last
    memory format.
    """

    def __init__(self, arch: Union[str, dict] = 's', in_channels: int = 3,
                 pretrain_img_size: Union[int, Sequence[int]] = 224,
                 out_indices: Optional[Sequence[int]] = None, frozen_stages: int = -1,
                 norm_eval: bool = False, with_cp: bool = False,
                 drop_path_rate: Optional[float] = None, filter_resize: str = 'bicubic',
                 mlp_ratio: float = 4.0, init_cfg: Optional[dict] = None,
                 pretrained: Optional[str] = None):
        check_backbone_args('GFNet', dict(
            arch=arch, in_channels=in_channels, pretrain_img_size=pretrain_img_size,
            out_indices=out_indices, frozen_stages=frozen_stages, norm_eval=norm_eval,
            with_cp=with_cp, drop_path_rate=drop_path_rate, filter_resize=filter_resize,
            mlp_ratio=mlp_ratio))
        settings = _variant_settings(arch, GFNET_ARCHS, ('embed_dim', 'depth'), drop_path_rate)
        super().__init__(in_chans=in_channels, img_size=pretrain_img_size, mlp_ratio=mlp_ratio,
                         filter_resize=filter_resize, with_cp=with_cp, **settings)
        self.arch = arch
        if out_indices is None:
            out_indices = [(k + 1) * self.depth // 4 - 1 for k in range(4)]
        self._setup(normalize_indices(out_indices, self.depth, 'block'),
                    [self.embed_dim] * self.depth, frozen_stages, norm_eval, init_cfg, pretrained)

    def _last_is_final(self) -> bool:
        return self.out_indices[-1] == self.depth - 1

    def _unused_modules(self):
        return list(self.blocks[self.out_indices[-1] + 1:])

    def _frozen_modules(self):
        if self.frozen_stages < 0:
            return []
        modules = [self.patch_embed, self.pos_embed, *self.blocks[:self.frozen_stages]]
        modules += [getattr(self, f'norm{i}') for i in self.out_indices if i < self.frozen_stages]
        return modules

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return self._normed_outputs(x)


@MODELS.register_module()
class AFFNet(MMBackboneMixin, AFFNetTrunk, BaseModule):
    """AFFNet backbone: NCHW maps of the chosen stages (strides 2/4/8/16/32), any input size.

    Args:
        arch: ``'et'``, ``'t'``, ``'s'`` or a dict with ``widths`` (5 stages) and
            ``expand_ratio``.
        out_indices: stages to return; default ``(1, 2, 3, 4)``, strides 4-32.
        frozen_stages: ``-1`` none, ``0`` the stem, ``k`` the stem and stages ``0..k-1``.
        norm_eval: BatchNorm layers in eval mode during training.
        output_stride: 32, or 16 / 8 to dilate the last one / two stages instead of
            down-sampling (DeepLabv3 uses 8).
        with_cp, drop_path_rate, pretrained: as ``GFNetH``.
        init_cfg: ``dict(type='Pretrained', checkpoint=path)`` loads any checkpoint
            of ours, or a public (cvnets-layout) AFFNet classifier or DeepLabv3
            segmentation file, converted on load.

    Shape: ``(N, C, H, W) -> tuple of (N, W_i, ceil(H/s_i), ceil(W/s_i))`` with
    ``s_i = min(2 ** (i + 1), output_stride)``; in inference on the fast path the maps
    are channels-last in memory (``gfnet_dense.ops.config.conv_memory_format``).
    """

    _classifier_prefixes = ('head.', 'conv_1x1_exp.')

    def __init__(self, arch='s', in_channels: int = 3, out_indices: Sequence[int] = (1, 2, 3, 4),
                 frozen_stages: int = -1, norm_eval: bool = False, with_cp: bool = False,
                 drop_path_rate: float = 0.0, output_stride: int = 32,
                 init_cfg: Optional[dict] = None, pretrained: Optional[str] = None):
        check_backbone_args('AFFNet', dict(
            arch=arch, in_channels=in_channels, out_indices=out_indices,
            frozen_stages=frozen_stages, norm_eval=norm_eval, with_cp=with_cp,
            drop_path_rate=drop_path_rate, output_stride=output_stride))
        settings = _variant_settings(arch, AFFNET_ARCHS, ('widths', 'expand_ratio'),
                                     drop_path_rate)
        super().__init__(in_chans=in_channels, with_cp=with_cp, output_stride=output_stride,
                         **settings)
        self.arch = arch
        self._setup(normalize_indices(out_indices, len(self.stages), 'stage'), None,
                    frozen_stages, norm_eval, init_cfg, pretrained)

    def _last_is_final(self) -> bool:
        return False

    def _unused_modules(self):
        return list(self.stages[self.out_indices[-1] + 1:])

    def _frozen_modules(self):
        if self.frozen_stages < 0:
            return []
        return [self.stem, *self.stages[:self.frozen_stages]]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(self.forward_intermediates(x, list(self.out_indices), stop_early=True,
                                                intermediates_only=True))
