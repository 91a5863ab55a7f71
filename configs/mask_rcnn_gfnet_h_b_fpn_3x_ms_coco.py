_base_ = './mask_rcnn_gfnet_h_s_fpn_3x_ms_coco.py'
pretrained_checkpoint = 'pretrained/gfnet-h-b.pth'
model = dict(backbone=dict(arch='b', init_cfg=dict(checkpoint=pretrained_checkpoint)))
