# The Semantic FPN recipe on ADE20K in the PVT setting (the GFNet paper's):
# 512x512 crops, 40k iterations at 32 images (4 per GPU x 8 GPUs), AdamW lr 1e-4,
# wd 1e-4, poly schedule with power 0.9. A config adds its backbone and channels.
_base_ = ['mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py', './gfnet.py', './backbones.py']

model = dict(pretrained=None)
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
