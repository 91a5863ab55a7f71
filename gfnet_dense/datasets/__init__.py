"""Data helpers: the bundled ADE20K-layout demo set and label checks."""
from .demo_data import ADE20K_DEMO_CLASSES, make_ade20k_demo
from .label_check import SegLabelCheckHook, check_seg_labels

__all__ = ['ADE20K_DEMO_CLASSES', 'SegLabelCheckHook', 'check_seg_labels', 'make_ade20k_demo']
