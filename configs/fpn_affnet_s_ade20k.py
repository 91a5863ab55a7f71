# Semantic FPN + AFFNet-S on ADE20K in the PVT setting (as fpn_gfnet_h_s_ade20k.py).
_base_ = './fpn_gfnet_h_s_ade20k.py'

pretrained_checkpoint = 'pretrained/affnet-s.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='AFFNet',
        arch='s',
        out_indices=(1, 2, 3, 4),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_checkpoint)),
    neck=dict(in_channels=[64, 128, 256, 320]))
