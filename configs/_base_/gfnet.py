# What every GFNet config adds to its OpenMMLab base: the import that registers
# the backbones and the no-decay keys (children take them with
# {{_base_.gfnet_no_decay_keys}} next to an mmseg:: / mmdet:: base).
custom_imports = dict(imports=['gfnet_dense'], allow_failed_imports=False)

# no weight decay on norms, position embedding and global filters
gfnet_no_decay_keys = {
    'norm': dict(decay_mult=0.),
    'pos_embed': dict(decay_mult=0.),
    'complex_weight': dict(decay_mult=0.),
}
