# Mask R-CNN + GFNet-H-Ti, FPN, 1x on COCO (recipe: _base_/mask_rcnn_coco_1x.py).
_base_ = './_base_/mask_rcnn_coco_1x.py'

model = dict(backbone={{_base_.gfnet_h_ti}}, neck=dict(in_channels={{_base_.gfnet_h_ti_channels}}))
