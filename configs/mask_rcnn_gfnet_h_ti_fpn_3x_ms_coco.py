_base_ = './mask_rcnn_gfnet_h_s_fpn_3x_ms_coco.py'
pretrained_checkpoint = 'pretrained/gfnet-h-ti.pth'
model = dict(
    backbone=dict(arch='ti', init_cfg=dict(checkpoint=pretrained_checkpoint)),
    neck=dict(in_channels=[64, 128, 256, 512]))
