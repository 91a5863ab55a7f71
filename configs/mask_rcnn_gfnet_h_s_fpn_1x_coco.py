# Mask R-CNN + GFNet-H-S, FPN, 1x (12 epochs) on COCO; the recipe of mmdet's
# Swin-T Mask R-CNN: AdamW lr 1e-4, wd 0.05, 16 images per iteration (2 x 8 GPUs).
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', './_base_/gfnet.py']

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
