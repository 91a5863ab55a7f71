"""AFFNet: adaptive frequency filtering, GFNet's dynamic relative (Huang et al., ICCV 2023).

Where GFNet learns one static filter per resolution, AFFNet computes its filter
from the content: a small complex channel MLP (8 groups) on the spectrum,
soft-shrunk, multiplies the spectrum. No weight depends on H x W, so any input
size works without resizing. The frequency-domain core (float32 FFTs under
autocast, channels-first planes) is ``spectral_filter`` shared with GFNet.

Layout (MobileViT style, channels-first throughout): a stride-2 stem, two
MobileNetV2 stages, then three stages of ``down-sampling MBConv -> AFF blocks ->
LayerNorm -> 1x1 projection -> concat with the stage input -> 1x1 fusion``.
``AFFNetTrunk.forward_stages`` returns the five stage maps, strides 2/4/8/16/32.
"""
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

from .gfnet import check_image_batch, run_blocks
from .global_filter import spectral_filter

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


def _make_divisible(value: float, divisor: int = 8) -> int:
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


class ConvBNAct(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1,
                 groups: int = 1, act: bool = True):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.SiLU() if act else nn.Identity())


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand -> 3x3 depthwise -> 1x1 project (+ input when shapes allow)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: float):
        super().__init__()
        hidden = _make_divisible(round(in_ch * expand_ratio))
        layers = [] if expand_ratio == 1 else [ConvBNAct(in_ch, hidden)]
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden),
                   ConvBNAct(hidden, out_ch, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of ``(B, C, H, W)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class AdaptiveFrequencyFilter(nn.Module):
    """``z + irfft2(softshrink(MLP(Z)) * Z)`` with ``Z = rfft2(z)``: ``(B, C, H, W) -> same``.

    The MLP is complex, two layers, block-diagonal over ``groups`` channel
    groups; ``w*[0]`` / ``w*[1]`` hold real and imaginary parts.
    """

    def __init__(self, dim: int, groups: int = 8, sparsity: float = 0.01):
        super().__init__()
        if dim % groups:
            raise ValueError(f'AFF filter channels {dim} must be divisible by {groups} groups')
        size = dim // groups
        self.groups, self.sparsity = groups, sparsity
        self.w1 = nn.Parameter(0.02 * torch.randn(2, groups, size, size))
        self.b1 = nn.Parameter(0.02 * torch.randn(2, groups, size))
        self.w2 = nn.Parameter(0.02 * torch.randn(2, groups, size, size))
        self.b2 = nn.Parameter(0.02 * torch.randn(2, groups, size))
        self.act = nn.ReLU()

    @staticmethod
    def _complex_linear(real, imag, weight, bias):
        """Per-group ``(real + i imag) @ (weight[0] + i weight[1]) + bias`` on ``(B, G, c, H, W)``."""
        def mix(t, w):
            return torch.einsum('bgihw,gio->bgohw', t, w)
        return (mix(real, weight[0]) - mix(imag, weight[1]) + bias[0][..., None, None],
                mix(imag, weight[0]) + mix(real, weight[1]) + bias[1][..., None, None])

    def mask(self, spectrum: torch.Tensor) -> torch.Tensor:
        """The content-dependent complex filter for a ``(B, C, H, W//2+1)`` spectrum."""
        b, c, h, w = spectrum.shape
        grouped = spectrum.reshape(b, self.groups, c // self.groups, h, w)
        real, imag = self._complex_linear(grouped.real, grouped.imag, self.w1, self.b1)
        real, imag = self._complex_linear(self.act(real), self.act(imag), self.w2, self.b2)
        return torch.complex(F.softshrink(real, self.sparsity),
                             F.softshrink(imag, self.sparsity)).reshape(b, c, h, w)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + spectral_filter(z, self.mask).to(z.dtype)


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
                 drop_paths: Sequence[float], with_cp: bool = False):
        super().__init__()
        self.downsample = InvertedResidual(in_ch, dim, 2, expand_ratio)
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
    """Stem and five stages; ``forward_stages`` gives NCHW maps at strides 2..32."""

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 256, 320), expand_ratio: float = 4,
                 in_chans: int = 3, drop_path_rate: float = 0.0, with_cp: bool = False):
        super().__init__()
        stages = len(MV2_DEPTHS) + len(AFF_DEPTHS)
        if len(widths) != stages:
            raise ValueError(f'AFFNet has {stages} stages ({len(MV2_DEPTHS)} MobileNetV2, '
                             f'{len(AFF_DEPTHS)} AFF): widths needs {stages} entries, got '
                             f'{tuple(widths)} ({len(widths)})')
        self.in_chans, self.widths = in_chans, tuple(widths)
        self.stem = ConvBNAct(in_chans, STEM_WIDTH, 3, 2)
        stages: List[nn.Module] = []
        in_ch = STEM_WIDTH
        for i, (depth, width) in enumerate(zip(MV2_DEPTHS, widths[:2])):
            stages.append(nn.Sequential(*(
                InvertedResidual(in_ch if j == 0 else width, width, 2 if i and j == 0 else 1,
                                 expand_ratio) for j in range(depth))))
            in_ch = width
        rates = iter(torch.linspace(0, drop_path_rate, sum(AFF_DEPTHS)).tolist())
        for depth, width in zip(AFF_DEPTHS, widths[2:]):
            stages.append(AFFStage(in_ch, width, depth, expand_ratio,
                                   [next(rates) for _ in range(depth)], with_cp))
            in_ch = width
        self.stages = nn.ModuleList(stages)

    def check_input(self, x: torch.Tensor) -> None:
        check_image_batch(x, self.in_chans, type(self).__name__)

    def forward_stages(self, x: torch.Tensor, last_stage: int = -1) -> List[torch.Tensor]:
        self.check_input(x)
        last_stage %= len(self.stages)
        x = self.stem(x)  # 3x3 stride-2 convs with padding 1: ceil(H / 2) at any size
        outs = []
        for stage in self.stages[:last_stage + 1]:
            x = stage(x)
            outs.append(x)
        return outs


class AFFNetClassifier(AFFNetTrunk):
    """AFFNet ImageNet classifier: ``(B, C, H, W) -> (B, num_classes)``."""

    def __init__(self, num_classes: int = 1000, **kwargs):
        kwargs.pop('global_pool', None)
        super().__init__(**kwargs)
        self.num_features = self.head_hidden_size = min(4 * self.widths[-1], 960)
        self.conv_1x1_exp = ConvBNAct(self.widths[-1], self.num_features)
        self.reset_classifier(num_classes)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool=None) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_1x1_exp(self.forward_stages(x)[-1])

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _cfg() -> dict:
    return dict(url='', num_classes=1000, input_size=(3, 256, 256), pool_size=None,
                crop_pct=0.875, interpolation='bicubic', fixed_input_size=False,
                mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), first_conv='stem.0',
                classifier='head', license='mit')


default_cfgs = generate_default_cfgs({f'affnet_{a}.in1k': _cfg() for a in AFFNET_ARCHS})


def _affnet(arch: str, pretrained: bool, **kwargs) -> AFFNetClassifier:
    return build_model_with_cfg(AFFNetClassifier, f'affnet_{arch}', pretrained,
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

