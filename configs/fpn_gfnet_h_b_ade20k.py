_base_ = './fpn_gfnet_h_s_ade20k.py'
pretrained_checkpoint = 'pretrained/gfnet-h-b.pth'
model = dict(backbone=dict(arch='b', init_cfg=dict(checkpoint=pretrained_checkpoint)))
