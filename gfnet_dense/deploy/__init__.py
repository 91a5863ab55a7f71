"""Deployment: ONNX export of our models and ONNX Runtime inference (``pip install -e .[deploy]``).

``export_onnx`` traces a model under ``gfnet_dense.ops.config.onnx_export``: the
plain formulation, filters and position embeddings resized inside the graph, and
the inverse FFTs in the form ONNX Runtime runs at any size, so one file with
symbolic batch, H and W serves every input size. ``SegmentorForExport`` and
``DetectorForExport`` give MMSeg / MMDet models a single image-in, tensors-out
``forward``.
"""
from .onnx_export import export_onnx, max_abs_diff, onnx_session, run_onnx
from .wrappers import DetectorForExport, SegmentorForExport

__all__ = ['DetectorForExport', 'SegmentorForExport', 'export_onnx', 'max_abs_diff',
           'onnx_session', 'run_onnx']
