# UperNet + AFFNet-S on ADE20K: the same recipe as upernet_gfnet_h_s_ade20k.py
# (mmseg's Swin-T UperNet), with the dynamic frequency-filter backbone. Strides
# 4/8/16/32 come from AFFNet stages 1-4 (64/128/256/320 channels).
_base_ = './upernet_gfnet_h_s_ade20k.py'

# ImageNet-pretrained AFFNet-S classifier weights (timm layout of affnet_s, e.g.
# tools/pretrain.py --model affnet_s); None trains from scratch.
pretrained_checkpoint = 'pretrained/affnet-s.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='AFFNet',
        arch='s',
        out_indices=(1, 2, 3, 4),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_checkpoint)),
    decode_head=dict(in_channels=[64, 128, 256, 320]),
    auxiliary_head=dict(in_channels=256))
