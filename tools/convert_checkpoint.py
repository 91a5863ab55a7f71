"""Convert GFNet checkpoints between layouts, optionally resizing to another resolution.

    python tools/convert_checkpoint.py SRC DST --model gfnet_h_s [--to released|backbone]
        [--img-size 384] [--filter-resize bicubic|bilinear|spatial]

SRC may be a released file (``{'model': ...}``), a ``tools/pretrain.py``
checkpoint, a plain state dict, a backbone file written by this tool or an
MMEngine segmentor / detector checkpoint (its ``backbone.*`` weights).

``--to released`` writes ``{'model': state_dict}`` in the released classifier
layout (needs a classification head in SRC); ``--to backbone`` writes
``{'state_dict': ...}`` of the ``GFNetH`` / ``GFNet`` backbone for MMSeg / MMDet
``init_cfg``. ``--img-size`` resizes ``pos_embed`` and the global filters to that
resolution. The result is verified by loading it strictly before it is written.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import timm  # noqa: E402
import torch  # noqa: E402

from gfnet_dense.models import GFNet, GFNetH  # noqa: E402
from gfnet_dense.models.checkpoint import (CheckpointMismatchError, adapt_state_dict,  # noqa: E402
                                           load_into, read_checkpoint, unwrap_state_dict)
from gfnet_dense.models.gfnet import GFNET_ARCHS, GFNET_H_ARCHS  # noqa: E402

MODELS = {f'gfnet_{a}': (GFNet, a) for a in GFNET_ARCHS}
MODELS.update({f'gfnet_h_{a}': (GFNetH, a) for a in GFNET_H_ARCHS})


def backbone_for(name: str, img_size: int, filter_resize: str):
    """The backbone with default outputs (all four stages / quarter blocks)."""
    cls, arch = MODELS[name]
    return cls(arch=arch, pretrain_img_size=img_size, filter_resize=filter_resize)


def to_released(src: str, name: str, img_size: int, filter_resize: str) -> dict:
    weights = unwrap_state_dict(read_checkpoint(src))
    if 'head.weight' not in weights:
        raise CheckpointMismatchError('the source has no classification head (head.weight); '
                                      'convert it with --to backbone instead')
    num_classes = weights['head.weight'].shape[0]
    model = timm.create_model(name, num_classes=num_classes, img_size=img_size,
                              filter_resize=filter_resize)
    load_into(model, adapt_state_dict(weights, model))
    return {'model': model.state_dict()}


def to_backbone(src: str, name: str, img_size: int, filter_resize: str) -> dict:
    backbone = backbone_for(name, img_size, filter_resize)
    backbone.init_cfg = dict(type='Pretrained', checkpoint=src)
    backbone.init_weights()  # the loader MMSeg / MMDet use: any layout, strict
    return {'state_dict': backbone.state_dict()}


def convert(src: str, dst: str, model: str, to: str = 'released', img_size: int = 224,
            filter_resize: str = 'bicubic') -> None:
    if model not in MODELS:
        raise ValueError(f'unknown --model {model!r}; choose one of {sorted(MODELS)}')
    convert_fn = to_released if to == 'released' else to_backbone
    result = convert_fn(src, model, img_size, filter_resize)
    torch.save(result, dst)
    verify(dst, model, to, img_size, filter_resize)


def verify(path: str, model: str, to: str, img_size: int, filter_resize: str) -> None:
    """Reload the written file the way users will, strictly."""
    if to == 'released':
        weights = torch.load(path, map_location='cpu', weights_only=True)['model']
        net = timm.create_model(model, num_classes=weights['head.weight'].shape[0],
                                img_size=img_size, filter_resize=filter_resize)
        net.load_state_dict(weights)
    else:
        backbone = backbone_for(model, img_size, filter_resize)
        backbone.init_cfg = dict(type='Pretrained', checkpoint=path)
        backbone.init_weights()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument('--model', required=True, help=f'one of {sorted(MODELS)}')
    parser.add_argument('--to', choices=['released', 'backbone'], default='released')
    parser.add_argument('--img-size', type=int, default=224,
                        help='resolution to resize pos_embed and filters to')
    parser.add_argument('--filter-resize', default='bicubic',
                        choices=['bicubic', 'bilinear', 'spatial'])
    args = parser.parse_args(argv)
    try:
        convert(args.src, args.dst, args.model, args.to, args.img_size, args.filter_resize)
    except (CheckpointMismatchError, FileNotFoundError, ValueError) as err:
        sys.exit(f'error: {err}')
    print(f'wrote {args.dst} ({args.to} layout, {args.model} at {args.img_size}), '
          'verified by a strict load')


if __name__ == '__main__':
    main()
