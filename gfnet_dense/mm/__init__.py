"""The OpenMMLab side (the only code that imports mmengine / mmseg / mmdet).

Importing it registers, in MMEngine's root registries (built under the ``mmseg``
and ``mmdet`` scopes alike), the backbones ``GFNet``, ``GFNetH``, ``AFFNet`` and
``TimmFeatures``, the hooks ``SafeCheckpointLoadingHook`` and ``SegLabelCheckHook``
and ``LayerDecayOptimWrapperConstructor``; it puts our checkpoint loaders in
MMEngine's scheme table (``safe_loading``) and the FFTs in mmengine's FLOP table.
"""
from ..flop_handles import register_mmengine_handles
from .backbones import AFFNet, GFNet, GFNetH
from .label_check import SegLabelCheckHook, check_seg_labels
from .layer_decay import LayerDecayOptimWrapperConstructor
from .safe_loading import SafeCheckpointLoadingHook, install_safe_loading, safe_checkpoint_loading
from .timm_features import TimmFeatures

install_safe_loading()  # MMEngine's local / http(s) / model-zoo loaders: safe_loading.py
register_mmengine_handles()  # FFTs in mmengine's FLOP table (MMSeg's / MMDet's get_flops)

__all__ = ['AFFNet', 'GFNet', 'GFNetH', 'LayerDecayOptimWrapperConstructor',
           'SafeCheckpointLoadingHook', 'SegLabelCheckHook', 'TimmFeatures', 'check_seg_labels',
           'safe_checkpoint_loading']
