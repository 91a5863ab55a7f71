# The Mask R-CNN recipe on COCO, 1x (12 epochs): mmdet's Swin-T Mask R-CNN with
# FPN, AdamW lr 1e-4, wd 0.05, 16 images per iteration (2 x 8 GPUs), no weight
# decay on norms, pos_embed and filters. A config adds its backbone and channels.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', './gfnet.py', './backbones.py']

optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, custom_keys={{_base_.gfnet_no_decay_keys}}))
