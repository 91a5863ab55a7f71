# Mask R-CNN + GFNet-H-S, FPN, 3x (36 epochs) with multi-scale training (short
# side 480-800 and DETR-style random crops), as mmdet's Swin-T 3x config.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py', './_base_/gfnet.py']

# ImageNet-pretrained GFNet-H-S: the released gfnet-h-s.pth or the checkpoint.pth
# written by tools/pretrain.py (or --cfg-options model.backbone.init_cfg.checkpoint=...).
pretrained_checkpoint = 'pretrained/gfnet-h-s.pth'

model = dict(backbone=dict(
        _delete_=True,
        type='GFNetH',
        arch='s',
        pretrain_img_size=224,
        filter_resize='bicubic',
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_checkpoint)), neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, custom_keys={{_base_.gfnet_no_decay_keys}}))
