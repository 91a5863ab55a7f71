"""Fail on the first batch whose segmentation labels fall outside the dataset's classes.

Out-of-range labels otherwise surface as a device-side assert in the loss (GPU)
or as silently wrong IoU; this hook names the annotation file instead.
"""
from typing import Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def check_seg_labels(gt: torch.Tensor, num_classes: int, ignore_index: int = 255,
                     source: str = '?', reduce_zero_label: bool = False) -> None:
    values = torch.unique(gt)
    bad = values[(values >= num_classes) & (values != ignore_index) | (values < 0)]
    if bad.numel():
        raw = (bad + 1) if reduce_zero_label else bad
        valid = f'0-{num_classes}, 0 = unlabeled' if reduce_zero_label else f'0-{num_classes - 1}'
        raise ValueError(f'annotation {source} holds labels {raw.tolist()} outside the '
                         f'{num_classes} classes of the dataset (valid raw values: {valid}); '
                         'fix the annotation or the dataset classes')


@HOOKS.register_module()
class SegLabelCheckHook(Hook):
    """Check ``gt_sem_seg`` of every train / val / test batch against the class count."""

    priority = 'VERY_HIGH'

    def __init__(self, num_classes: Optional[int] = None, ignore_index: int = 255):
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def _check(self, runner, loader, data_batch) -> None:
        if not data_batch or 'data_samples' not in data_batch:
            return
        dataset = loader.dataset
        num_classes = self.num_classes or len(dataset.metainfo['classes'])
        reduce_zero_label = getattr(dataset, 'reduce_zero_label', False)
        samples: Sequence = data_batch['data_samples']
        for sample in samples:
            if 'gt_sem_seg' in sample:
                check_seg_labels(sample.gt_sem_seg.data, num_classes, self.ignore_index,
                                 sample.metainfo.get('seg_map_path', '?'), reduce_zero_label)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._check(runner, runner.train_dataloader, data_batch)

    def before_val_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._check(runner, runner.val_dataloader, data_batch)

    def before_test_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._check(runner, runner.test_dataloader, data_batch)
