# Semantic FPN + AFFNet-S on ADE20K, PVT setting (recipe: _base_/fpn_ade20k.py).
_base_ = './_base_/fpn_ade20k.py'

model = dict(data_preprocessor={{_base_.affnet_input}}, backbone={{_base_.affnet_s}},
             neck=dict(in_channels={{_base_.affnet_s_channels}}))
