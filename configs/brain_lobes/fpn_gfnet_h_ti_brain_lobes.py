# Semantic FPN + GFNet-H-Ti on the brain-lobe slices. Pretrained from tools/pretrain.py's
# Fashion-MNIST checkpoint (32x32): the filters are resized from the 8x8 / 4x4 / 2x2 /
# 1x1 stage grids of that size. From scratch: --cfg-options model.backbone.init_cfg=None
_base_ = './_base_/fpn_brain_lobes.py'

model = dict(
    backbone=dict(_delete_=True, type='GFNetH', arch='ti', pretrain_img_size=32,
                  filter_resize='bicubic',
                  init_cfg=dict(type='Pretrained', checkpoint='pretrained/fmnist-gfnet_h_ti.pth')),
    neck=dict(in_channels={{_base_.gfnet_h_ti_channels}}))
