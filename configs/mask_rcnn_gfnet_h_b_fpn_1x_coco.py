# Mask R-CNN + GFNet-H-B, FPN, 1x on COCO (recipe: _base_/mask_rcnn_coco_1x.py).
_base_ = './_base_/mask_rcnn_coco_1x.py'

model = dict(backbone={{_base_.gfnet_h_b}}, neck=dict(in_channels={{_base_.gfnet_h_b_channels}}))
