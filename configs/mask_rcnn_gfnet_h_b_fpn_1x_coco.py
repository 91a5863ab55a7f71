_base_ = './mask_rcnn_gfnet_h_s_fpn_1x_coco.py'
pretrained_checkpoint = 'pretrained/gfnet-h-b.pth'
model = dict(backbone=dict(arch='b', init_cfg=dict(checkpoint=pretrained_checkpoint)))
