# UperNet + isotropic GFNet-S (stride 16) on ADE20K. A multi-level neck turns the
# four stride-16 block outputs into strides 4/8/16/32, as mmseg does for ViT.
_base_ = ['mmseg::vit/vit_vit-b16_mln_upernet_8xb2-160k_ade20k-512x512.py',
          './_base_/gfnet.py', './_base_/backbones.py']

model = dict(
    pretrained=None,
    backbone={{_base_.gfnet_s}},
    neck=dict(in_channels=[384, 384, 384, 384], out_channels=384),
    decode_head=dict(in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384))
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, custom_keys={{_base_.gfnet_no_decay_keys}}))
custom_hooks = [{{_base_.safe_loading_hook}}, dict(type='SegLabelCheckHook')]
