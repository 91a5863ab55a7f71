# RetinaNet + GFNet-H-Ti, FPN, 1x on COCO (recipe: _base_/retinanet_coco.py).
_base_ = './_base_/retinanet_coco.py'

model = dict(backbone={{_base_.gfnet_h_ti_s8}}, neck=dict(in_channels=[128, 256, 512]))
