# Mask R-CNN + GFNet-H-S, FPN, 3x (36 epochs) with multi-scale training (short
# side 480-800 and DETR-style random crops), as mmdet's Swin-T 3x config.
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py'
custom_imports = dict(imports=['gfnet_dense'], allow_failed_imports=False)

pretrained_checkpoint = 'pretrained/gfnet-h-s.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='GFNetH',
        arch='s',
        pretrain_img_size=224,
        filter_resize='bicubic',
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_checkpoint)),
    neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, custom_keys={
    'norm': dict(decay_mult=0.),
    'pos_embed': dict(decay_mult=0.),
    'complex_weight': dict(decay_mult=0.),
}))
