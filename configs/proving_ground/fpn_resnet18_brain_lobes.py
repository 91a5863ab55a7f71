# Semantic FPN + ResNet-18 (timm) on the brain-lobe slices, the peer of
# fpn_gfnet_h_ti_brain_lobes.py: same head, data and schedule.
_base_ = './_base_/fpn_brain_lobes.py'

model = dict(
    backbone=dict(_delete_=True, type='TimmFeatures', model_name='resnet18',
                  init_cfg=dict(type='Pretrained', checkpoint='pretrained/fmnist-resnet18.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
