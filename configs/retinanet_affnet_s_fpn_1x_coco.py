# RetinaNet + AFFNet-S, FPN on strides 8/16/32, 1x on COCO (recipe: _base_/retinanet_coco.py).
_base_ = './_base_/retinanet_coco.py'

model = dict(data_preprocessor={{_base_.affnet_input}}, backbone={{_base_.affnet_s_s8}},
             neck=dict(in_channels=[128, 256, 320]))
