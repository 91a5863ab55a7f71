# UperNet + GFNet-H-S on ADE20K (recipe: _base_/upernet_ade20k.py).
_base_ = './_base_/upernet_ade20k.py'

model = dict(
    backbone={{_base_.gfnet_h_s}},
    decode_head=dict(in_channels={{_base_.gfnet_h_s_channels}}),
    auxiliary_head=dict(in_channels=384))
