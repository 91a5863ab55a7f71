# RetinaNet + GFNet-H-B, FPN, 1x on COCO (recipe: _base_/retinanet_coco.py).
_base_ = './_base_/retinanet_coco.py'

model = dict(backbone={{_base_.gfnet_h_b_s8}}, neck=dict(in_channels=[192, 384, 768]))
