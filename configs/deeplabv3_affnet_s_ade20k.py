# DeepLabv3 + AFFNet-S on ADE20K at 256x256: the AFFNet paper's segmentation setting
# (38.4 mIoU; microsoft/TokenMixers, "Adaptive Frequency Filters"). Its own training
# config is not public (OneDrive), so the recipe is cvnets' DeepLabv3 ADE20K recipe
# for MobileViTv2 (apple/ml-cvnets, config/segmentation/ade20k/deeplabv3_mobilevitv2.yaml;
# AFFNet's code is a cvnets fork), taken to half the resolution:
#   model     AFFNet-S at output stride 8 (stages 3-4 dilated, as cvnets), its last stage
#             (320 channels) into an ASPP head: 256 channels (the public AFFNet-S DeepLabv3
#             file's width), rates 12/24/36 + a 1x1 branch + image pooling, dropout 0.1,
#             1x1 classifier, SyncBN + ReLU; no auxiliary head (the public AFFNet DeepLabv3
#             files have none; the MobileViTv2 recipe uses one)
#   loss      cross-entropy averaged over the labelled pixels (as PyTorch's, cvnets' loss)
#   optimizer SGD, momentum 0.9, lr 0.02 cosine-annealed to 2e-4, weight decay 1e-4 with
#             none on norms and biases, gradient norm clipped at 10
#   schedule  120 epochs at 16 images per iteration (4 per GPU x 4 GPUs; or 2 x 8)
#             = 120 x 20210 / 16 ~ 151.6k iterations, no warm-up
#   training  short side resized to 128-384 (long side at most 512, bicubic), horizontal
#             flip, 256x256 random crop (no class above 75 % of it, padded with ignore),
#             photometric distortion, rotation by up to +-10 degrees (ignore fill)
#   EMA       of all weights and BN statistics, momentum 5e-4; validation, checkpoints
#             and tools/test.py use the averaged weights
# Differences from the public setup:
#   - the head: mmseg's ASPPHead with cvnets' 1x1 projection of the five branches
#     (ProjectedASPPHead, gfnet_dense/mm/seg_heads.py); branch order and key names differ
#     from cvnets', so a public DeepLabv3 file gives its encoder (init_cfg), not its head
#   - cvnets' "gaussian noise" option (a Gaussian blur, p 0.5) is left out (mmseg has no
#     such transform for natural images); mmseg's PhotoMetricDistortion stands in for
#     cvnets' (the same four jitters, mmseg's ranges); the short side is drawn from
#     128-384 in steps of 16; the lr follows the cosine per iteration (cvnets: per epoch)
#   - float32 by default: cvnets trains in mixed precision (tools/train.py --amp fp16)
#   - BatchNorm is synchronised in the head only (cvnets: the whole network; add
#     --cfg-options sync_bn=torch for the backbone's BatchNorms under DDP)
# Input: RGB in [0, 1] (mean 0, std 255), as the public AFFNet weights and
# tools/pretrain.py's AFFNet checkpoints take it.
# Test: whole image, short side resized to 256 keeping the aspect ratio (long side at
# most 1024): the training scale (crops from short sides 128-384, centred on 256) and
# mmseg's ADE20K convention (short side = crop size) without distorting shapes; the
# labels are scored at the original resolution. cvnets evaluates at the original size
# or a fixed square, the AFFNet paper does not say which.
_base_ = ['mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-80k_ade20k-512x512.py', './_base_/gfnet.py']
custom_imports = dict(imports=['gfnet_dense', 'gfnet_dense.mm.seg_heads'],
                      allow_failed_imports=False)

crop_size = (256, 256)
data_preprocessor = dict(size=crop_size, mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0])
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True, type='AFFNet', arch='s', out_indices=(4,), output_stride=8,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/affnet-s.pth')),
    decode_head=dict(type='ProjectedASPPHead', in_channels=320, in_index=0, channels=256,
                     dilations=(1, 12, 24, 36),
                     dropout_ratio=0.1, num_classes=150,
                     loss_decode=dict(avg_non_ignore=True)),
    auxiliary_head=None,
    test_cfg=dict(mode='whole'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomChoiceResize', scales=[(512, s) for s in range(128, 385, 16)],
         resize_type='Resize', keep_ratio=True, interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomRotate', prob=1.0, degree=10, pad_val=0, seg_pad_val=255),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1024, 256), keep_ratio=True, interpolation='bicubic'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
# tools/test.py --tta: 0.5-1.75 x the test scale, each also flipped
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(int(1024 * r), int(256 * r)), keep_ratio=True,
              interpolation='bicubic')
         for r in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)],
        [dict(type='RandomFlip', prob=0.0, direction='horizontal'),
         dict(type='RandomFlip', prob=1.0, direction='horizontal')],
        [dict(type='LoadAnnotations')],
        [dict(type='PackSegInputs')]]),
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=10.0),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
max_iters = 151575  # 120 epochs x 20210 images / 16
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=2e-4, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
custom_hooks = [
    {{_base_.safe_loading_hook}},
    dict(type='SegLabelCheckHook'),
    dict(type='EMAHook', momentum=0.0005, update_buffers=True, priority=49),
]
