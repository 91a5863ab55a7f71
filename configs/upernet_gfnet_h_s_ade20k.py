# UperNet + GFNet-H-S on ADE20K: 512x512 crops, 160k iterations, 16 images per
# iteration (2 per GPU x 8 GPUs). The recipe is mmseg's Swin-T UperNet; only the
# backbone, its channels and the no-decay keys differ.
_base_ = [
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
    './_base_/gfnet.py',
]

# ImageNet-pretrained GFNet-H-S: the released gfnet-h-s.pth or the checkpoint.pth
# written by tools/pretrain.py (or --cfg-options model.backbone.init_cfg.checkpoint=...).
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
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, custom_keys={{_base_.gfnet_no_decay_keys}}))
custom_hooks = [{{_base_.safe_loading_hook}}, dict(type='SegLabelCheckHook')]

# Test settings. The default is whole-image inference at the short side 512
# (non-square inputs: the filters follow the size). Sliding window:
#   --cfg-options model.test_cfg.mode=slide model.test_cfg.crop_size="(512,512)"
#                 model.test_cfg.stride="(341,341)"
# Multi-scale (0.5-1.75) + flip: tools/test.py --tta (tta_pipeline of the base).
