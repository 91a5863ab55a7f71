"""AFFNet weights in the public implementation's layout (cvnets) <-> ours.

The public AFFNet (microsoft/TokenMixers, "Adaptive Frequency Filters", built on
Apple's cvnets) names its modules ``conv_1``, ``layer_1`` ... ``layer_5``,
``conv_1x1_exp`` and ``classifier.fc``; a conv-norm-activation is
``<name>.block.conv`` / ``<name>.block.norm``, a MobileNetV2 block
``block.exp_1x1`` / ``conv_3x3`` / ``red_1x1``, and an AFF stage is
``layer_k.0`` (down-sampling) and ``layer_k.1`` with ``global_rep.0..d-1`` (the
blocks), ``global_rep.d`` (the norm), ``conv_proj`` and ``fusion``. Its DeepLabv3
segmentation checkpoints hold the same weights under ``encoder.`` beside
``seg_head.``. Ours (``gfnet_dense.models.affnet``) has the same tensors, one for
one, under ``stem``, ``stages.0..4``, ``conv_1x1_exp`` and ``head``.

Only names change: the tensors are the same objects. Loading stays strict
(``gfnet_dense.checkpoints.load_into``): a key that maps to nothing in the model
is reported, never dropped.
"""
import re
from collections import defaultdict
from typing import Dict, List

import torch

_CONV_NORM = ('conv', 'norm')  # cvnets ConvLayer children <-> our ConvBNAct indices 0, 1
_MV2_WITH_EXPANSION = ('exp_1x1', 'conv_3x3', 'red_1x1')
_ENCODER = 'encoder.'

State = Dict[str, torch.Tensor]


def is_cvnets_layout(state: State) -> bool:
    """Whether ``state`` (``module.`` already removed) holds a cvnets AFFNet: a
    classifier (``conv_1.block.conv.weight``) or a segmentation model's encoder."""
    return any(k in state for k in ('conv_1.block.conv.weight',
                                    _ENCODER + 'conv_1.block.conv.weight'))


def _block_children(state: State) -> Dict[str, set]:
    """``{'<...>.block.': {child indices}}`` for every ``block.<i>.`` in our keys, in one
    pass (the mapping stays linear in the number of keys)."""
    children = defaultdict(set)
    for key in state:
        for match in re.finditer(r'block\.(\d+)\.', key):
            children[key[:match.start()] + 'block.'].add(match[1])
    return children


def _mv2_names(children: Dict[str, set], block_prefix: str) -> List[str]:
    """The cvnets child names of the MobileNetV2 block under ``block_prefix`` in
    our keys (three convs with the 1x1 expansion, two without)."""
    return list(_MV2_WITH_EXPANSION[-len(children[block_prefix]):])


def _conv_norm(index: str) -> str:
    return f'block.{_CONV_NORM[int(index)]}'


def ours_to_cvnets(state: State) -> State:
    """Our AFFNet classifier / trunk weights under the public implementation's names."""
    depths = defaultdict(set)
    for key in state:
        match = re.match(r'stages\.(\d+)\.blocks\.(\d+)\.', key)
        if match:
            depths[match.group(1)].add(match.group(2))

    children = _block_children(state)

    def mv2(prefix: str, index: str, rest: str) -> str:
        names = _mv2_names(children, prefix)
        return f'block.{names[int(index)]}.{rest}'

    out = {}
    for key, value in state.items():
        rules = (
            (r'stem\.(\d)\.(.+)', lambda m: f'conv_1.{_conv_norm(m[1])}.{m[2]}'),
            (r'conv_1x1_exp\.(\d)\.(.+)', lambda m: f'conv_1x1_exp.{_conv_norm(m[1])}.{m[2]}'),
            (r'head\.(.+)', lambda m: f'classifier.fc.{m[1]}'),
            (r'(stages\.([01])\.(\d+)\.block\.)(\d)\.(\d)\.(.+)',
             lambda m: f'layer_{int(m[2]) + 1}.{m[3]}.'
                       + mv2(m[1], m[4], f'{_conv_norm(m[5])}.{m[6]}')),
            (r'(stages\.(\d)\.downsample\.block\.)(\d)\.(\d)\.(.+)',
             lambda m: f'layer_{int(m[2]) + 1}.0.'
                       + mv2(m[1], m[3], f'{_conv_norm(m[4])}.{m[5]}')),
            (r'(stages\.(\d)\.blocks\.(\d+)\.mlp\.block\.)(\d)\.(\d)\.(.+)',
             lambda m: f'layer_{int(m[2]) + 1}.1.global_rep.{m[3]}.mlp.'
                       + mv2(m[1], m[4], f'{_conv_norm(m[5])}.{m[6]}')),
            (r'stages\.(\d)\.blocks\.(\d+)\.((?:norm1|norm2|filter)\..+)',
             lambda m: f'layer_{int(m[1]) + 1}.1.global_rep.{m[2]}.{m[3]}'),
            (r'stages\.(\d)\.norm\.(.+)',
             lambda m: f'layer_{int(m[1]) + 1}.1.global_rep.{len(depths[m[1]])}.{m[2]}'),
            (r'stages\.(\d)\.(proj|fusion)\.(\d)\.(.+)',
             lambda m: f'layer_{int(m[1]) + 1}.1.'
                       f'{"conv_proj" if m[2] == "proj" else "fusion"}.{_conv_norm(m[3])}.{m[4]}'),
        )
        for pattern, rename in rules:
            match = re.fullmatch(pattern, key)
            if match:
                key = rename(match)
                break
        out[key] = value  # a key no rule knows is kept, for the strict load to report
    return out


def cvnets_to_ours(state: State) -> State:
    """Public-layout weights under our names. A DeepLabv3 segmentation checkpoint
    (``encoder.*`` + ``seg_head.*``) gives its encoder: the head is dropped."""
    if any(k.startswith(_ENCODER) for k in state):
        state = {k[len(_ENCODER):]: v for k, v in state.items() if k.startswith(_ENCODER)}
    depths = defaultdict(int)
    for key in state:
        match = re.match(r'layer_(\d)\.1\.global_rep\.(\d+)\.', key)
        if match:
            depths[match[1]] = max(depths[match[1]], int(match[2]))  # the last one: the norm

    expanded = {key[:key.index('exp_1x1.')] for key in state if 'exp_1x1.' in key}
    out = {}
    for key, value in state.items():
        new = re.sub(r'^conv_1\.', 'stem.', key)
        new = re.sub(r'^classifier\.fc\.', 'head.', new)
        new = re.sub(r'^layer_([12])\.', lambda m: f'stages.{int(m[1]) - 1}.', new)
        new = re.sub(r'^layer_(\d)\.0\.', lambda m: f'stages.{int(m[1]) - 1}.downsample.', new)
        new = re.sub(r'^layer_(\d)\.1\.global_rep\.(\d+)\.',
                     lambda m: f'stages.{int(m[1]) - 1}.'
                               + ('norm.' if int(m[2]) == depths[m[1]] else f'blocks.{m[2]}.'),
                     new)
        new = re.sub(r'^layer_(\d)\.1\.conv_proj\.', lambda m: f'stages.{int(m[1]) - 1}.proj.',
                     new)
        new = re.sub(r'^layer_(\d)\.1\.fusion\.', lambda m: f'stages.{int(m[1]) - 1}.fusion.', new)
        block = re.match(r'(.*\.block\.)(exp_1x1|conv_3x3|red_1x1)\.', new)
        if block:
            with_expansion = key[:key.index(block[2])] in expanded
            names = list(_MV2_WITH_EXPANSION if with_expansion else _MV2_WITH_EXPANSION[1:])
            new = f'{block[1]}{names.index(block[2])}.' + new[block.end():]
        new = new.replace('.block.conv.', '.0.').replace('.block.norm.', '.1.')
        out[new] = value
    return out
