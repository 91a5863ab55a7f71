# Semantic FPN on brain MRI slices with AAL lobe labels (written by
# gfnet_dense.datasets.aal.write_seg_dataset; data/brain_lobes_demo is the bundled copy
# the demo config trains on): 16 classes, 217x181 (H x W) slices trained and tested at
# their native size (padded to multiples of 32 in the batch). No flips:
# they would swap the hemispheres the classes name. A config adds its backbone and
# the neck's in_channels; the schedule is short and the same for every backbone.
_base_ = ['mmseg::_base_/models/fpn_r50.py', 'mmseg::_base_/default_runtime.py',
          '../../_base_/gfnet.py', '../../_base_/backbones.py']

data_root = 'data/brain_lobes'
size_wh = (181, 217)
max_iters = 600
classes = ('background', 'frontal_L', 'frontal_R', 'insula_limbic_L', 'insula_limbic_R',
           'occipital_L', 'occipital_R', 'parietal_L', 'parietal_R', 'deep_grey_L',
           'deep_grey_R', 'temporal_L', 'temporal_R', 'cerebellum_L', 'cerebellum_R', 'vermis')
palette = [(0, 0, 0), (230, 25, 75), (255, 130, 130), (60, 180, 75), (170, 255, 195),
           (0, 130, 200), (120, 200, 255), (245, 130, 48), (255, 215, 150), (145, 30, 180),
           (220, 190, 255), (255, 225, 25), (255, 250, 160), (128, 128, 128),
           (210, 210, 210), (240, 50, 230)]

model = dict(
    pretrained=None,
    data_preprocessor=dict(size=None, size_divisor=32, seg_pad_val=255),
    decode_head=dict(num_classes=len(classes)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PhotoMetricDistortion', saturation_range=(1., 1.), hue_delta=1),
    dict(type='PackSegInputs'),
]
# evaluating at another size changes the Resize scale; the metric is computed
# against the labels at their native size
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=size_wh, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
dataset = dict(type='BaseSegDataset', data_root=data_root,
               metainfo=dict(classes=classes, palette=palette),
               img_suffix='.png', seg_map_suffix='.png')
train_dataloader = dict(
    batch_size=8, num_workers=2, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(dataset, pipeline=train_pipeline,
                 data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train')))
val_dataloader = dict(
    batch_size=1, num_workers=1, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, pipeline=test_pipeline,
                 data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val')))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-4, weight_decay=0.01),
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(custom_keys={{_base_.gfnet_no_decay_keys}}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=max_iters // 10),
    dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=max_iters // 10,
         end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters // 2,
                    max_keep_ckpts=1),
    visualization=dict(type='SegVisualizationHook', draw=False))
custom_hooks = [{{_base_.safe_loading_hook}}, dict(type='SegLabelCheckHook')]
env_cfg = dict(cudnn_benchmark=False)
