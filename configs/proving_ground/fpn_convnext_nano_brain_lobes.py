# Semantic FPN + ConvNeXt-Nano (timm, 15.6M parameters, GFNet-H-Ti has 14.6M) on the
# brain-lobe slices, the peer of fpn_gfnet_h_ti_brain_lobes.py.
_base_ = './_base_/fpn_brain_lobes.py'

model = dict(
    backbone=dict(_delete_=True, type='TimmFeatures', model_name='convnext_nano',
                  init_cfg=dict(type='Pretrained',
                                checkpoint='pretrained/fmnist-convnext_nano.pth')),
    neck=dict(in_channels=[80, 160, 320, 640]))
