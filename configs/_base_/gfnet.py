# What every GFNet config adds to its OpenMMLab base: the import that registers
# the backbones, the safe checkpoint loading hook and the no-decay keys (children take them with
# {{_base_.gfnet_no_decay_keys}} next to an mmseg:: / mmdet:: base).
custom_imports = dict(imports=['gfnet_dense'], allow_failed_imports=False)

# checkpoints (load_from, resume, testing) load under gfnet_dense's safe policy, also
# with MMSeg's / MMDet's own tools: tensors and training state only, no code
# (children that set custom_hooks list {{_base_.safe_loading_hook}} first)
safe_loading_hook = dict(type='SafeCheckpointLoadingHook')
custom_hooks = [safe_loading_hook]

# no weight decay on norms, position embedding and global filters
gfnet_no_decay_keys = {
    'norm': dict(decay_mult=0.),
    'pos_embed': dict(decay_mult=0.),
    'complex_weight': dict(decay_mult=0.),
}
