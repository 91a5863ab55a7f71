# RetinaNet + GFNet-H-S, FPN on strides 8/16/32 (+2 extra levels), 1x on COCO.
# AdamW lr 1e-4, wd 0.05, 16 images per iteration (2 x 8 GPUs).
_base_ = ['mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py', './_base_/gfnet.py']

# ImageNet-pretrained GFNet-H-S: the released gfnet-h-s.pth or the checkpoint.pth
# written by tools/pretrain.py (or --cfg-options model.backbone.init_cfg.checkpoint=...).
pretrained_checkpoint = 'pretrained/gfnet-h-s.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='GFNetH',
        arch='s',
        out_indices=(1, 2, 3),  # stage 0 feeds no FPN level: it gets no output norm
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_checkpoint)),
    neck=dict(in_channels=[192, 384, 768]))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={{_base_.gfnet_no_decay_keys}}))
