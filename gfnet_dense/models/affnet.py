"""AFFNet: adaptive frequency filtering, GFNet's dynamic relative (Huang et al., ICCV 2023).

The filter is computed from the content (``gfnet_dense.layers.AdaptiveFrequencyFilter``),
so no weight depends on H x W. Layout (MobileViT style, NCHW) as the public code
(microsoft/TokenMixers, on cvnets; ``gfnet_dense.checkpoints.cvnets`` converts its
files): a stride-2 stem, two MobileNetV2 stages, three stages of ``down-sampling
MBConv -> AFF blocks -> norm -> 1x1 projection -> concat with the stage input -> 1x1
fusion``. SiLU everywhere; the AFF stages' norms are cvnets' ``layer_norm_2d`` (a
one-group GroupNorm). The five stages are the feature levels (strides 2/4/8/16/32);
the classifier adds a 1x1 expansion, global pooling and a linear head.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from timm.layers import DropPath, calculate_drop_path_rates, make_divisible
from timm.models import generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import nn

from ..layers import AdaptiveFrequencyFilter, EvalCacheMixin, check_image_batch, run_blocks
from ..ops.config import (conv_memory_format, decision_device, fast_path_eligible,
                          mbconv_strip_rows, use_fast_inference, use_folded_batch_norm)
from ..ops.conv_bn import FoldedConv, fold_batch_norm
from ..ops.mbconv import inverted_residual_strips
from .features import check_output_fmt, to_output_fmt
from .heads import ClassifierMixin, build_classifier, factory_kwargs

# widths of the five stages, MobileNetV2 expansion; AFF blocks per stage 3/4/5
AFFNET_ARCHS: Dict[str, dict] = {
    'et': dict(widths=(32, 48, 64, 104, 144), expand_ratio=2),
    't': dict(widths=(32, 48, 96, 160, 192), expand_ratio=4),
    's': dict(widths=(32, 64, 128, 256, 320), expand_ratio=4),
}
AFF_DEPTHS = (2, 4, 3)
MV2_DEPTHS = (1, 3)
STEM_WIDTH = 16
FFN_RATIO = 2


class ConvBNAct(EvalCacheMixin, nn.Sequential):
    """Conv (``kernel // 2`` padding), BatchNorm, SiLU (none with ``act=False``).

    Inference on the fast path runs the convolution with the BatchNorm folded in
    and the SiLU in place (``gfnet_dense.ops.conv_bn``; the folded weights are
    kept while in eval).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1,
                 groups: int = 1, act: bool = True, dilation: int = 1):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2 * dilation, dilation,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.SiLU() if act else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, norm, act = self
        if not use_folded_batch_norm(x, self.training):
            return act(norm(conv(x)))
        return self.folded()(x)

    def folded(self) -> FoldedConv:
        """The convolution with the BatchNorm folded in (kept while in eval), and its SiLU."""
        conv, norm, act = self
        weight, bias = self.memoize(('folded',), lambda: fold_batch_norm(conv, norm), params=(
            conv.weight, conv.bias, norm.weight, norm.bias, norm.running_mean, norm.running_var))
        return FoldedConv(conv, weight, bias, isinstance(act, nn.SiLU))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand -> 3x3 depthwise -> 1x1 project (+ input when shapes allow).

    Inference on the fast path runs the folded convolutions, on CPU in strips of
    rows where the expanded map is large (``gfnet_dense.ops.mbconv``).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: float,
                 dilation: int = 1):
        super().__init__()
        hidden = make_divisible(round(in_ch * expand_ratio))
        layers = [] if expand_ratio == 1 else [ConvBNAct(in_ch, hidden)]
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden, dilation=dilation),
                   ConvBNAct(hidden, out_ch, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not use_fast_inference(x, self.training):
            return x + self.block(x) if self.residual else self.block(x)
        layers = [layer.folded() for layer in self.block]
        *expand, depthwise, project = layers
        hidden = (x.shape[0], depthwise.conv.in_channels, x.shape[2], x.shape[3])
        rows = mbconv_strip_rows(hidden, depthwise.conv.stride[0], decision_device(x))
        if rows is not None:  # a large expanded map: in strips of rows (ops.mbconv)
            return inverted_residual_strips(x, expand[0] if expand else None, depthwise,
                                            project, self.residual, rows)
        out = x
        for layer in layers:
            out = layer(out)
        return out.add_(x) if self.residual else out  # out is a fresh tensor


class LayerNorm2d(nn.GroupNorm):
    """cvnets' ``layer_norm_2d``: ``(B, C, H, W)`` normalised over ``C, H, W`` of each
    image (one group), a weight and bias per channel."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__(1, dim, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not fast_path_eligible(x) or x.is_contiguous():  # NCHW maps off the fast path
            return super().forward(x)
        # channels-last maps (fast path): normalised as NCHW planes, since the CPU
        # kernel for channels-last sums squares in one pass (less accurate in float32)
        return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)


class AFFBlock(nn.Module):
    """``z = norm2(MBConv(norm1(x)))``; ``x + drop_path(z + frequency_filter(z))``."""

    def __init__(self, dim: int, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.mlp = InvertedResidual(dim, dim, 1, FFN_RATIO)
        self.norm2 = LayerNorm2d(dim)
        self.filter = AdaptiveFrequencyFilter(dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.filter(self.norm2(self.mlp(self.norm1(x)))))


class AFFStage(nn.Module):
    """Down-sample, AFF blocks, then fuse the global features with the stage input."""

    def __init__(self, in_ch: int, dim: int, depth: int, expand_ratio: float,
                 drop_paths: Sequence[float], with_cp: bool = False, dilation: int = 1):
        """``dilation`` > 1: the down-sampling keeps the resolution (stride 1) and
        dilates its depthwise convolution by that much instead (``output_stride``)."""
        super().__init__()
        stride = 1 if dilation > 1 else 2
        self.downsample = InvertedResidual(in_ch, dim, stride, expand_ratio,
                                           max(dilation // 2, 1))
        self.blocks = nn.ModuleList(AFFBlock(dim, p) for p in drop_paths[:depth])
        self.norm = LayerNorm2d(dim)
        self.proj = ConvBNAct(dim, dim, act=False)
        self.fusion = ConvBNAct(2 * dim, dim)
        self.with_cp = with_cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        y = run_blocks(self.blocks, x, self.with_cp)
        return self.fusion(torch.cat((x, self.proj(self.norm(y))), dim=1))


class AFFNetTrunk(nn.Module):
    """Stem and five stages: NCHW maps at strides 2, 4, 8, 16, 32, one feature level each.

    ``final_conv`` adds the classifiers' 1x1 expansion of the last stage to
    ``num_features`` channels (else ``conv_1x1_exp`` is an identity).
    ``output_stride`` 16 or 8 keeps the last one or two AFF stages at the
    resolution before them and dilates their down-sampling instead (DeepLabv3,
    cvnets' ``output_stride``).
    """

    output_fmt = 'NCHW'  # of forward_features

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 256, 320), expand_ratio: float = 4,
                 in_chans: int = 3, drop_path_rate: float = 0.0, with_cp: bool = False,
                 final_conv: bool = False, output_stride: int = 32):
        super().__init__()
        stages = len(MV2_DEPTHS) + len(AFF_DEPTHS)
        if len(widths) != stages:
            raise ValueError(f'AFFNet has {stages} stages ({len(MV2_DEPTHS)} MobileNetV2, '
                             f'{len(AFF_DEPTHS)} AFF): widths needs {stages} entries, got '
                             f'{tuple(widths)} ({len(widths)})')
        if output_stride not in (8, 16, 32):
            raise ValueError(f'output_stride must be 8, 16 or 32, got {output_stride!r}')
        self.in_chans, self.widths = in_chans, tuple(widths)
        self.stem = ConvBNAct(in_chans, STEM_WIDTH, 3, 2)
        stages: List[nn.Module] = []
        in_ch = STEM_WIDTH
        for i, (depth, width) in enumerate(zip(MV2_DEPTHS, widths[:2])):
            stages.append(nn.Sequential(*(
                InvertedResidual(in_ch if j == 0 else width, width, 2 if i and j == 0 else 1,
                                 expand_ratio) for j in range(depth))))
            in_ch = width
        rates = iter(calculate_drop_path_rates(drop_path_rate, sum(AFF_DEPTHS)))
        reductions, stride, dilation = [2, 4], 4, 1
        for depth, width in zip(AFF_DEPTHS, widths[2:]):
            if stride * 2 > output_stride:
                dilation *= 2
            else:
                stride *= 2
            stages.append(AFFStage(in_ch, width, depth, expand_ratio,
                                   [next(rates) for _ in range(depth)], with_cp, dilation))
            reductions.append(stride)
            in_ch = width
        self.stages = nn.ModuleList(stages)
        self.num_features = self.head_hidden_size = min(4 * self.widths[-1], 960)
        self.conv_1x1_exp = (ConvBNAct(self.widths[-1], self.num_features) if final_conv
                             else nn.Identity())
        self.feature_info = [dict(num_chs=width, reduction=reduction, module=f'stages.{i}')
                             for i, (width, reduction) in enumerate(zip(self.widths, reductions))]
        if final_conv:  # channels of the last map with norm=True (timm's FeatureGetterNet)
            self.feature_info[-1]['num_chs_norm'] = self.num_features

    def check_input(self, x: torch.Tensor) -> None:
        check_image_batch(x, self.in_chans, type(self).__name__)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Gradient checkpointing per AFF block (``use_reentrant=False``)."""
        for stage in self.stages:
            if isinstance(stage, AFFStage):
                stage.with_cp = enable

    def no_weight_decay(self) -> set:
        return set()

    def group_matcher(self, coarse: bool = False) -> dict:
        """Stem; then stage by stage: MobileNetV2 blocks, and an AFF stage's
        down-sampling with its first block, its norm / projection / fusion with its last."""
        if coarse:  # one group per stage
            blocks = [(r'^stages\.(\d+)', None)]
        else:  # (stage, block)
            blocks = [(r'^stages\.(\d+)\.(\d+)', None),  # MobileNetV2
                      (r'^stages\.(\d+)\.downsample', (0,)),
                      (r'^stages\.(\d+)\.blocks\.(\d+)', None),
                      (r'^stages\.(\d+)\.(?:norm|proj|fusion)', (99999,))]
        return dict(stem=r'^stem', blocks=blocks + [(r'^conv_1x1_exp', (99999,))])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, num_features, ceil(H/32), ceil(W/32))``: every stage,
        then ``conv_1x1_exp``."""
        self.check_input(x)
        # 3x3 stride-2 convs with padding 1: ceil(H / 2) at any size
        x = self.stem(x.contiguous(memory_format=conv_memory_format(x, self.training)))
        for stage in self.stages:
            x = stage(x)
        return self.conv_1x1_exp(x)

    def forward_intermediates(
            self, x: torch.Tensor, indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False, stop_early: bool = False, output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The outputs of the stages in ``indices`` (``None``: all, ``n``: the last
        ``n``, a list: those, negative from the end), each ``(B, W_i, ceil(H/s_i),
        ceil(W/s_i))`` (``output_fmt='NHWC'``: channels last); ``norm`` applies
        ``conv_1x1_exp`` to the last stage's (strides ``min(s_i, output_stride)``;
        NCHW maps may be channels-last in memory). ``stop_early`` runs no stage past the
        last one taken. Returns them, or ``(final features, them)``.
        """
        check_output_fmt(output_fmt)
        take, last = feature_take_indices(len(self.stages), indices)
        self.check_input(x)
        x = self.stem(x.contiguous(memory_format=conv_memory_format(x, self.training)))
        last_stage = len(self.stages) - 1
        intermediates = []
        for i, stage in enumerate(self.stages[:last + 1] if stop_early else self.stages):
            x = stage(x)
            if i in take:
                y = self.conv_1x1_exp(x) if norm and i == last_stage else x
                intermediates.append(to_output_fmt(y, 'NCHW', output_fmt))
        if intermediates_only:
            return intermediates
        return (self.conv_1x1_exp(x) if i == last_stage else x), intermediates


class AFFNetClassifier(ClassifierMixin, AFFNetTrunk):
    """AFFNet ImageNet classifier: ``(B, C, H, W) -> (B, num_classes)``."""

    @factory_kwargs
    def __init__(self, num_classes: int = 1000, global_pool: str = 'avg', **kwargs):
        super().__init__(final_conv=True, **kwargs)
        self._build_head(self.num_features, num_classes, global_pool)

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True) -> List[int]:
        """Drop the stages after the last of ``indices`` (with them ``conv_1x1_exp`` and
        the head, which fit the last stage only), and ``conv_1x1_exp`` / the head as
        asked; returns the stages ``indices`` name, counted from the start."""
        take, last = feature_take_indices(len(self.stages), indices)
        prune_end = last < len(self.stages) - 1
        self.stages = self.stages[:last + 1]
        if prune_norm or prune_end:
            self.conv_1x1_exp = nn.Identity()
            self.num_features = self.head_hidden_size = self.feature_info[last]['num_chs']
        if prune_head or prune_norm or prune_end:  # the head fits conv_1x1_exp's output
            self.reset_classifier(0)
        return take


def _cfg() -> dict:
    return dict(url='', num_classes=1000, input_size=(3, 256, 256), pool_size=(8, 8),
                crop_pct=0.875, interpolation='bicubic', fixed_input_size=False,
                mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), first_conv='stem.0',
                classifier='head', license='mit')


default_cfgs = generate_default_cfgs({f'affnet_{a}.in1k': _cfg() for a in AFFNET_ARCHS})


def _affnet(arch: str, pretrained: bool, **kwargs) -> AFFNetClassifier:
    """``features_only=True`` gives the five stage maps (default) through
    ``forward_intermediates`` (timm's ``FeatureGetterNet``); ``pretrained=True`` with
    ``pretrained_cfg_overlay=dict(file=...)`` loads ours or a public cvnets file."""
    stages = len(MV2_DEPTHS) + len(AFF_DEPTHS)
    return build_classifier(AFFNetClassifier, f'affnet_{arch}', pretrained, range(stages),
                            **dict(AFFNET_ARCHS[arch], **kwargs))


@register_model
def affnet_et(pretrained: bool = False, **kwargs) -> AFFNetClassifier:
    return _affnet('et', pretrained, **kwargs)


@register_model
def affnet_t(pretrained: bool = False, **kwargs) -> AFFNetClassifier:
    return _affnet('t', pretrained, **kwargs)


@register_model
def affnet_s(pretrained: bool = False, **kwargs) -> AFFNetClassifier:
    return _affnet('s', pretrained, **kwargs)

