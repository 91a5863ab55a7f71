# UperNet + AFFNet-S on ADE20K (recipe: _base_/upernet_ade20k.py): strides 4/8/16/32
# from AFFNet stages 1-4 (64/128/256/320 channels).
_base_ = './_base_/upernet_ade20k.py'

model = dict(
    data_preprocessor={{_base_.affnet_input}},
    backbone={{_base_.affnet_s}},
    decode_head=dict(in_channels={{_base_.affnet_s_channels}}),
    auxiliary_head=dict(in_channels=256))
