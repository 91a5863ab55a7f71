"""MMSeg / MMDet models with one image-in, tensors-out ``forward`` for export."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn


class AdaptiveAvgPool2dForExport(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as two matrix products, ``P_h @ x @ P_w^T``, whose
    matrices are computed from ``arange`` (bin ``i`` of ``n`` over ``m`` inputs
    averages ``floor(i m / n) .. ceil((i + 1) m / n) - 1``, torch's bins): exported,
    torch's own decomposition fixes its window length at the export size and
    gathers out of range at other sizes."""

    def __init__(self, output_size):
        super().__init__()
        size = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * 2
        self.output_size = tuple(size)

    @staticmethod
    def _matrix(n_in, n_out: int, like: torch.Tensor) -> torch.Tensor:
        i = torch.arange(n_out, device=like.device)
        start = (i * n_in) // n_out
        end = ((i + 1) * n_in + n_out - 1) // n_out
        j = torch.arange(n_in, device=like.device)
        inside = (j[None, :] >= start[:, None]) & (j[None, :] < end[:, None])
        return inside.to(like.dtype) / (end - start)[:, None].to(like.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_h, out_w = (o if o is not None else x.shape[k + 2]
                        for k, o in enumerate(self.output_size))
        rows = self._matrix(x.shape[2], out_h, x)
        cols = self._matrix(x.shape[3], out_w, x)
        return torch.matmul(torch.matmul(rows, x), cols.t())


class ScaleUpsampleForExport(nn.Module):
    """MMSeg's ``Upsample`` by a scale factor, as ``F.interpolate(scale_factor=...)``:
    MMSeg's computes ``int(t * factor)``, which fixes the output size at the export
    size (silently: the graph then runs only there)."""

    def __init__(self, scale_factor: float, mode: str, align_corners):
        super().__init__()
        self.scale_factor, self.mode, self.align_corners = scale_factor, mode, align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale_factor, mode=self.mode,
                             align_corners=self.align_corners)


def _export_friendly(model: nn.Module) -> None:
    """Swap in place the modules whose export is wrong at sizes other than the
    export size (values equal in eager)."""
    for name, child in model.named_children():
        if isinstance(child, nn.AdaptiveAvgPool2d):
            setattr(model, name, AdaptiveAvgPool2dForExport(child.output_size))
        elif (type(child).__name__ == 'Upsample' and type(child).__module__.startswith('mmseg')
              and not child.size and child.scale_factor):
            setattr(model, name, ScaleUpsampleForExport(child.scale_factor, child.mode,
                                                        child.align_corners))
        else:
            _export_friendly(child)


class _Normalise(nn.Module):
    """RGB float 0-255 NCHW in; the data preprocessor's mean / std applied in the graph."""

    def __init__(self, model: nn.Module):
        super().__init__()
        pre = model.data_preprocessor
        mean = getattr(pre, 'mean', None)
        std = getattr(pre, 'std', None)
        mean = torch.zeros(3) if mean is None else mean.flatten()
        std = torch.ones(3) if std is None else std.flatten()
        self.register_buffer('mean', mean.float().reshape(1, -1, 1, 1).clone())
        self.register_buffer('std', std.float().reshape(1, -1, 1, 1).clone())

    def normalise(self, image: torch.Tensor) -> torch.Tensor:
        return (image - self.mean) / self.std


class SegmentorForExport(_Normalise):
    """An MMSeg ``EncoderDecoder`` in whole-image test mode:
    ``(N, 3, H, W)`` RGB 0-255 -> ``(N, num_classes, H, W)`` class logits (the decode
    head's, resized to the input as MMSeg's whole inference does; no sliding window)."""

    def __init__(self, segmentor: nn.Module):
        super().__init__(segmentor)
        if not hasattr(segmentor, 'decode_head') or not hasattr(segmentor, 'extract_feat'):
            raise TypeError(f'{type(segmentor).__name__} is not an MMSeg EncoderDecoder '
                            '(no decode_head / extract_feat); cascade segmentors are not supported')
        _export_friendly(segmentor)
        self.segmentor = segmentor

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feats = self.segmentor.extract_feat(self.normalise(image))
        logits = self.segmentor.decode_head(feats)
        return F.interpolate(logits, size=image.shape[2:], mode='bilinear',
                             align_corners=self.segmentor.align_corners)


class DetectorForExport(_Normalise):
    """An MMDet detector's backbone + neck features and its dense head's raw outputs:
    ``(N, 3, H, W)`` RGB 0-255 (pad it to a multiple of the largest stride as MMDet
    does) -> ``(*features, *scores per level, *box deltas per level, ...)``, before
    box decoding and NMS. Single-stage detectors give ``bbox_head``'s outputs,
    two-stage ones their ``rpn_head``'s (the RoI head needs proposals: decode the
    RPN outputs and run it yourself)."""

    def __init__(self, detector: nn.Module):
        super().__init__(detector)
        head = getattr(detector, 'bbox_head', None) or getattr(detector, 'rpn_head', None)
        if head is None or not hasattr(detector, 'extract_feat'):
            raise TypeError(f'{type(detector).__name__} has no dense head (bbox_head or rpn_head) '
                            'to export')
        _export_friendly(detector)
        self.detector, self.head = detector, head

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        feats = self.detector.extract_feat(self.normalise(image))
        outs = self.head(feats)
        return tuple(feats) + tuple(t for level_list in outs for t in level_list)
