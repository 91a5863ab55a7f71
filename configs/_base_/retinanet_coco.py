# The RetinaNet recipe on COCO (1x, 12 epochs): mmdet's Swin-T RetinaNet with FPN
# on strides 8/16/32 (+2 extra levels), AdamW lr 1e-4, wd 0.05, 16 images per
# iteration (2 x 8 GPUs). A config adds its backbone (strides 8-32) and channels.
_base_ = ['mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py', './gfnet.py', './backbones.py']

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={{_base_.gfnet_no_decay_keys}}))
