# The Mask R-CNN recipe on COCO, 3x (36 epochs) with multi-scale training (short
# side 480-800 and DETR-style random crops), as mmdet's Swin-T 3x config; AdamW
# lr 1e-4, wd 0.05. A config adds its backbone and channels.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py', './gfnet.py',
          './backbones.py']

optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, custom_keys={{_base_.gfnet_no_decay_keys}}))
