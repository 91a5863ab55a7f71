_base_ = './upernet_gfnet_h_s_ade20k.py'
pretrained_checkpoint = 'pretrained/gfnet-h-ti.pth'
model = dict(
    backbone=dict(arch='ti', init_cfg=dict(checkpoint=pretrained_checkpoint)),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
