_base_ = './fpn_gfnet_h_s_ade20k.py'
pretrained_checkpoint = 'pretrained/gfnet-h-ti.pth'
model = dict(
    backbone=dict(arch='ti', init_cfg=dict(checkpoint=pretrained_checkpoint)),
    neck=dict(in_channels=[64, 128, 256, 512]))
