# The UperNet recipe on ADE20K every UperNet config shares: mmseg's Swin-T UperNet
# (512x512 crops, 160k iterations, 16 images per iteration = 2 per GPU x 8 GPUs,
# AdamW lr 6e-5, wd 0.01, 1500 warm-up iterations, poly) with no weight decay on
# norms, pos_embed and global filters. A config adds its backbone and channels.
_base_ = [
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
    './gfnet.py',
    './backbones.py',
]
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, custom_keys={{_base_.gfnet_no_decay_keys}}))
custom_hooks = [{{_base_.safe_loading_hook}}, dict(type='SegLabelCheckHook')]

# Test settings. The default is whole-image inference at the short side 512
# (non-square inputs: the filters follow the size). Sliding window:
#   --cfg-options model.test_cfg.mode=slide model.test_cfg.crop_size="(512,512)"
#                 model.test_cfg.stride="(341,341)"
# Multi-scale (0.5-1.75) + flip: tools/test.py --tta (tta_pipeline of the base).
