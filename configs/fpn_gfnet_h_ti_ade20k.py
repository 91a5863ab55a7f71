# Semantic FPN + GFNet-H-Ti on ADE20K, PVT setting (recipe: _base_/fpn_ade20k.py).
_base_ = './_base_/fpn_ade20k.py'

model = dict(backbone={{_base_.gfnet_h_ti}}, neck=dict(in_channels={{_base_.gfnet_h_ti_channels}}))
