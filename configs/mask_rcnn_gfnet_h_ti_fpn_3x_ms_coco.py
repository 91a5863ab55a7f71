# Mask R-CNN + GFNet-H-Ti, FPN, 3x multi-scale on COCO (recipe: _base_/mask_rcnn_coco_3x_ms.py).
_base_ = './_base_/mask_rcnn_coco_3x_ms.py'

model = dict(backbone={{_base_.gfnet_h_ti}}, neck=dict(in_channels={{_base_.gfnet_h_ti_channels}}))
