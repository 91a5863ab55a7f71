# Semantic FPN + GFNet-H-S on ADE20K in the PVT setting (the GFNet paper's):
# 512x512 crops, 40k iterations at 32 images (4 per GPU x 8 GPUs), AdamW lr 1e-4,
# poly schedule with power 0.9.
_base_ = ['mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py', './_base_/gfnet.py']

# ImageNet-pretrained GFNet-H-S: the released gfnet-h-s.pth or the checkpoint.pth
# written by tools/pretrain.py (or --cfg-options model.backbone.init_cfg.checkpoint=...).
pretrained_checkpoint = 'pretrained/gfnet-h-s.pth'

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='GFNetH',
        arch='s',
        pretrain_img_size=224,
        filter_resize='bicubic',
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_checkpoint)),
    neck=dict(in_channels=[96, 192, 384, 768]))
train_dataloader = dict(batch_size=4)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={{_base_.gfnet_no_decay_keys}}))
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=40000, by_epoch=False)
]
train_cfg = dict(max_iters=40000, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
custom_hooks = [{{_base_.safe_loading_hook}}, dict(type='SegLabelCheckHook')]
