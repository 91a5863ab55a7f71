_base_ = './retinanet_gfnet_h_s_fpn_1x_coco.py'
pretrained_checkpoint = 'pretrained/gfnet-h-ti.pth'
model = dict(
    backbone=dict(arch='ti', init_cfg=dict(checkpoint=pretrained_checkpoint)),
    neck=dict(in_channels=[128, 256, 512]))
