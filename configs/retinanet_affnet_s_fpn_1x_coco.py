# RetinaNet + AFFNet-S, FPN on strides 8/16/32 (+2 extra levels), 1x on COCO,
# with the recipe of retinanet_gfnet_h_s_fpn_1x_coco.py.
_base_ = './retinanet_gfnet_h_s_fpn_1x_coco.py'

pretrained_checkpoint = 'pretrained/affnet-s.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='AFFNet',
        arch='s',
        out_indices=(2, 3, 4),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_checkpoint)),
    neck=dict(in_channels=[128, 256, 320]))
