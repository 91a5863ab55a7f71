"""Convert GFNet / AFFNet checkpoints between layouts, optionally resizing to another resolution.

    python tools/convert_checkpoint.py SRC DST --model gfnet_h_s [--to released|backbone|cvnets]
        [--img-size 384] [--filter-resize bicubic|bilinear|spatial] [--format pth|safetensors]

SRC may be a released file (``{'model': ...}``), a ``tools/pretrain.py``
checkpoint, a plain state dict, a backbone file written by this tool, an
MMEngine segmentor / detector checkpoint (its ``backbone.*`` weights) or, for
AFFNet, a file of the public implementation (cvnets layout: an ImageNet
classifier, or a DeepLabv3 segmentation model whose ``encoder.*`` is taken).

``--to released`` writes ``{'model': state_dict}`` in the released classifier
layout (needs a classification head in SRC); ``--to backbone`` writes
``{'state_dict': ...}`` of the ``GFNetH`` / ``GFNet`` / ``AFFNet`` backbone for
MMSeg / MMDet ``init_cfg``; ``--to cvnets`` (AFFNet) writes the public
implementation's classifier layout, a plain state dict as cvnets saves it.
``--img-size`` resizes ``pos_embed`` and the global
filters to that resolution (AFFNet has no size-dependent weights: it ignores
``--img-size`` and ``--filter-resize``). A DST ending in ``.safetensors`` gets the
same weights as a flat safetensors file with ``layout`` (released / backbone),
``model`` and ``img_size`` in its metadata (``--format`` only confirms the choice:
readers tell safetensors files by that suffix).

Nothing is written unless the result loads strictly into a freshly built model:
the file is written under a temporary name, read back and loaded, and only then
renamed to DST.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile

import timm
import torch

from gfnet_dense.checkpoints import (CheckpointMismatchError, adapt_state_dict, load_into,
                                     read_checkpoint, unwrap_state_dict)
from gfnet_dense.checkpoints.cvnets import cvnets_to_ours, is_cvnets_layout, ours_to_cvnets
from gfnet_dense.mm import AFFNet, GFNet, GFNetH
from gfnet_dense.models import AFFNET_ARCHS, GFNET_ARCHS, GFNET_H_ARCHS

MODELS = {f'gfnet_{a}': (GFNet, a) for a in GFNET_ARCHS}
MODELS.update({f'gfnet_h_{a}': (GFNetH, a) for a in GFNET_H_ARCHS})
MODELS.update({f'affnet_{a}': (AFFNet, a) for a in AFFNET_ARCHS})
FILE_KEYS = {'released': 'model', 'backbone': 'state_dict', 'cvnets': None}


def _size_free(name: str) -> bool:
    return MODELS[name][0] is AFFNet


def backbone_for(name: str, img_size: int, filter_resize: str):
    """The backbone with default outputs (all four stages / quarter blocks)."""
    cls, arch = MODELS[name]
    if _size_free(name):
        return cls(arch=arch)
    return cls(arch=arch, pretrain_img_size=img_size, filter_resize=filter_resize)


def classifier_for(name: str, num_classes: int, img_size: int, filter_resize: str):
    sizes = {} if _size_free(name) else dict(img_size=img_size, filter_resize=filter_resize)
    return timm.create_model(name, num_classes=num_classes, **sizes)


def to_released(src: str, name: str, img_size: int, filter_resize: str) -> dict:
    weights = unwrap_state_dict(read_checkpoint(src))
    if is_cvnets_layout(weights):
        weights = cvnets_to_ours(weights)
    if 'head.weight' not in weights:
        raise CheckpointMismatchError('the source has no classification head (head.weight); '
                                      'convert it with --to backbone instead')
    model = classifier_for(name, weights['head.weight'].shape[0], img_size, filter_resize)
    load_into(model, adapt_state_dict(weights, model))
    return model.state_dict()


def to_backbone(src: str, name: str, img_size: int, filter_resize: str) -> dict:
    backbone = backbone_for(name, img_size, filter_resize)
    backbone.init_cfg = dict(type='Pretrained', checkpoint=src)
    backbone.init_weights()  # the loader MMSeg / MMDet use: any layout, strict
    return backbone.state_dict()


def to_cvnets(src: str, name: str, img_size: int, filter_resize: str) -> dict:
    if not _size_free(name):
        raise ValueError(f'--to cvnets is the public AFFNet layout; {name} is not an AFFNet')
    return ours_to_cvnets(to_released(src, name, img_size, filter_resize))


CONVERTERS = {'released': to_released, 'backbone': to_backbone, 'cvnets': to_cvnets}


def check_destination(dst: str, fmt: str) -> None:
    if osp.isdir(dst):
        raise ValueError(f'DST {dst!r} is a directory; give a file name, '
                         f'e.g. {osp.join(dst, "converted." + fmt)}')
    folder = osp.dirname(osp.abspath(dst))
    if not osp.isdir(folder):
        raise FileNotFoundError(f'the folder of DST, {folder!r}, does not exist; create it first')


def save(state: dict, path: str, fmt: str, metadata: dict) -> None:
    if fmt == 'safetensors':
        from safetensors.torch import save_file
        save_file({k: v.detach().clone(memory_format=torch.contiguous_format)
                   for k, v in state.items()}, path, metadata=metadata)
    elif FILE_KEYS[metadata['layout']] is None:
        torch.save(state, path)
    else:
        torch.save({FILE_KEYS[metadata['layout']]: state}, path)


def verify(state: dict, name: str, layout: str, img_size: int, filter_resize: str) -> None:
    """Strict load into a freshly built model of the layout."""
    if layout == 'cvnets':
        state = cvnets_to_ours(state)
    if layout in ('released', 'cvnets'):
        model = classifier_for(name, state['head.weight'].shape[0], img_size, filter_resize)
    else:
        model = backbone_for(name, img_size, filter_resize)
    load_into(model, state)


def convert(src: str, dst: str, model: str, to: str = 'released', img_size: int = 224,
            filter_resize: str = 'bicubic', fmt: str = None) -> None:
    if model not in MODELS:
        raise ValueError(f'unknown --model {model!r}; choose one of {sorted(MODELS)}')
    by_suffix = 'safetensors' if dst.endswith('.safetensors') else 'pth'
    if fmt not in (None, by_suffix):
        raise ValueError(f'--format {fmt} does not match DST {dst!r}: checkpoint readers tell '
                         'safetensors files by their .safetensors suffix; name DST accordingly')
    fmt = by_suffix
    check_destination(dst, fmt)
    if to not in CONVERTERS:
        raise ValueError(f'unknown --to {to!r}; choose one of {sorted(CONVERTERS)}')
    state = CONVERTERS[to](src, model, img_size, filter_resize)
    metadata = dict(layout=to, model=model, img_size=str(img_size))
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(dst)}.', suffix=f'.{fmt}',
                               dir=osp.dirname(osp.abspath(dst)))
    os.close(fd)
    try:
        save(state, tmp, fmt, metadata)
        written = read_checkpoint(tmp)  # as users will read it
        if fmt != 'safetensors' and FILE_KEYS[to]:
            written = written[FILE_KEYS[to]]
        verify(written, model, to,
               img_size, filter_resize)
        os.replace(tmp, dst)  # DST is replaced only by a verified, complete file
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument('--model', required=True, help=f'one of {sorted(MODELS)}')
    parser.add_argument('--to', choices=sorted(CONVERTERS), default='released',
                        help='cvnets: the public AFFNet layout (AFFNet only)')
    parser.add_argument('--img-size', type=int, default=224,
                        help='resolution to resize pos_embed and filters to (GFNet only)')
    parser.add_argument('--filter-resize', default='bicubic',
                        choices=['bicubic', 'bilinear', 'spatial'])
    parser.add_argument('--format', choices=['pth', 'safetensors'], default=None,
                        help='file format; must match DST (safetensors for *.safetensors)')
    args = parser.parse_args(argv)
    try:
        convert(args.src, args.dst, args.model, args.to, args.img_size, args.filter_resize,
                args.format)
    except (CheckpointMismatchError, FileNotFoundError, ValueError) as err:
        sys.exit(f'error: {err}')
    size = '' if _size_free(args.model) else f' at {args.img_size}'
    print(f'wrote {args.dst} ({args.to} layout, {args.model}{size}), verified by a strict load')


if __name__ == '__main__':
    main()
