"""GFNet, GFNet-H and AFFNet; importing registers the timm classifiers (torch and timm only).

The MMEngine backbones built on these trunks live in ``gfnet_dense.mm``.
"""
from .affnet import AFFNET_ARCHS, AFFNetClassifier, AFFNetTrunk
from .gfnet import (GFNET_ARCHS, GFNET_H_ARCHS, GFBlock, GFNetClassifier, GFNetHClassifier,
                    HierarchicalGFNet, IsotropicGFNet)
from .heads import checkpoint_filter_fn

__all__ = [
    'AFFNET_ARCHS', 'AFFNetClassifier', 'AFFNetTrunk', 'GFBlock', 'GFNetClassifier',
    'GFNetHClassifier', 'GFNET_ARCHS', 'GFNET_H_ARCHS', 'HierarchicalGFNet', 'IsotropicGFNet',
    'checkpoint_filter_fn',
]
