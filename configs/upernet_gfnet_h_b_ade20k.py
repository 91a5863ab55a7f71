# UperNet + GFNet-H-B on ADE20K (recipe: _base_/upernet_ade20k.py).
_base_ = './_base_/upernet_ade20k.py'

model = dict(
    backbone={{_base_.gfnet_h_b}},
    decode_head=dict(in_channels={{_base_.gfnet_h_b_channels}}),
    auxiliary_head=dict(in_channels=384))
