# Every backbone variant the configs use, written once. A config takes one with
#   model = dict(backbone={{_base_.gfnet_h_s}}, ...)
# (``_delete_`` replaces the OpenMMLab base's own backbone) and the matching
# channels for its neck / heads. The checkpoints are the ImageNet-pretrained
# classifiers: a released file, tools/pretrain.py's checkpoint.pth or any layout
# tools/convert_checkpoint.py reads; change one with
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/file.pth


def _gfnet_h(arch, out_indices=(0, 1, 2, 3)):
    return dict(_delete_=True, type='GFNetH', arch=arch, pretrain_img_size=224,
                filter_resize='bicubic', out_indices=out_indices,
                init_cfg=dict(type='Pretrained', checkpoint=f'pretrained/gfnet-h-{arch}.pth'))


# GFNet-H stages 0-3: strides 4/8/16/32
gfnet_h_ti = _gfnet_h('ti')
gfnet_h_s = _gfnet_h('s')
gfnet_h_b = _gfnet_h('b')
gfnet_h_ti_channels = [64, 128, 256, 512]
gfnet_h_s_channels = [96, 192, 384, 768]
gfnet_h_b_channels = gfnet_h_s_channels
# stages 1-3 only (strides 8/16/32, RetinaNet): stage 0 gets no output norm
gfnet_h_ti_s8 = _gfnet_h('ti', (1, 2, 3))
gfnet_h_s_s8 = _gfnet_h('s', (1, 2, 3))
gfnet_h_b_s8 = _gfnet_h('b', (1, 2, 3))

# isotropic GFNet-S: the blocks ending each quarter (stride 16, 384 channels)
gfnet_s = dict(_delete_=True, type='GFNet', arch='s', out_indices=(3, 8, 13, 18),
               init_cfg=dict(type='Pretrained', checkpoint='pretrained/gfnet-s.pth'))

# AFFNet-S stages 1-4 (strides 4/8/16/32)
affnet_s = dict(_delete_=True, type='AFFNet', arch='s', out_indices=(1, 2, 3, 4),
                init_cfg=dict(type='Pretrained', checkpoint='pretrained/affnet-s.pth'))
affnet_s_channels = [64, 128, 256, 320]
# stages 2-4 only (strides 8/16/32, RetinaNet)
affnet_s_s8 = dict(affnet_s, out_indices=(2, 3, 4))
# AFFNet's input, as the public weights' and tools/pretrain.py's: RGB in [0, 1]
affnet_input = dict(mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0])
