# RetinaNet + GFNet-H-Ti on the tree crowns, pretrained on Fashion-MNIST at 32x32
# (tools/pretrain.py). From scratch: --cfg-options model.backbone.init_cfg=None
_base_ = './_base_/retinanet_trees.py'

model = dict(
    backbone=dict(_delete_=True, type='GFNetH', arch='ti', pretrain_img_size=32,
                  filter_resize='bicubic', out_indices=(1, 2, 3),
                  init_cfg=dict(type='Pretrained', checkpoint='pretrained/fmnist-gfnet_h_ti.pth')),
    neck=dict(in_channels=[128, 256, 512]))
