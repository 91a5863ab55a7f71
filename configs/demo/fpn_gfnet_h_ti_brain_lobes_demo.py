# The quick-start demo (python tools/demo.py): Semantic FPN + GFNet-H-Ti on the
# brain-lobe slices, trained from scratch on the bundled copy of the data
# (data/brain_lobes_demo, 80 train / 30 val slices; rewritten by
# python tools/make_demo_data.py --brain-lobes) with a short schedule that takes about
# five minutes on 2 CPU cores and a higher rate. Everything else (model, pipelines,
# batch size, optimizer, evaluation) is the base config's.
_base_ = '../brain_lobes/fpn_gfnet_h_ti_brain_lobes.py'

data_root = 'data/brain_lobes_demo'
max_iters = 150

model = dict(backbone=dict(init_cfg=None))  # no pretrained checkpoint in the repository
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=1e-3))  # from scratch: above the base's 6e-4
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=max_iters // 10),
    dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=max_iters // 10,
         end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
randomness = dict(seed=0)
