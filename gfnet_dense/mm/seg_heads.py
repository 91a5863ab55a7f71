"""Segmentation heads that need ``mmseg.models``; imported by the configs that use
them (``custom_imports``), so that ``import gfnet_dense`` does not load MMSeg's models."""
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads import ASPPHead
from mmseg.registry import MODELS


@MODELS.register_module()
class ProjectedASPPHead(ASPPHead):
    """DeepLabv3 as cvnets (the public AFFNet code) builds it: mmseg's ``ASPPHead``
    whose concatenated branches are fused by a 1x1 projection instead of a 3x3
    convolution (``(len(dilations) + 1) * channels -> channels``). Shapes and
    arguments as ``ASPPHead``."""

    def __init__(self, dilations=(1, 12, 24, 36), **kwargs):
        super().__init__(dilations=dilations, **kwargs)
        self.bottleneck = ConvModule(
            (len(dilations) + 1) * self.channels, self.channels, 1,
            conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
