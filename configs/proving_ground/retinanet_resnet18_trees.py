# RetinaNet + ResNet-18 (timm) on the tree crowns, the peer of
# retinanet_gfnet_h_ti_trees.py: same head, data and schedule.
_base_ = './_base_/retinanet_trees.py'

model = dict(
    backbone=dict(_delete_=True, type='TimmFeatures', model_name='resnet18',
                  out_indices=(2, 3, 4),
                  init_cfg=dict(type='Pretrained', checkpoint='pretrained/fmnist-resnet18.pth')),
    neck=dict(in_channels=[128, 256, 512]))
