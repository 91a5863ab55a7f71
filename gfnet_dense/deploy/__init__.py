"""Deployment: ONNX export of our models and ONNX Runtime inference (``pip install -e .[deploy]``).

``export_onnx`` records a model under ``ops.config.onnx_export``, where the layers
take their export branch (resizes in the graph, the FFTs of ``onnx_fft``), so one
file with symbolic batch, H and W serves every input size. ``SegmentorForExport``
and ``DetectorForExport`` give MMSeg / MMDet models one image-in, tensors-out ``forward``.
"""
from .onnx_export import export_onnx, max_abs_diff, onnx_session, run_onnx
from .wrappers import DetectorForExport, SegmentorForExport

__all__ = ['DetectorForExport', 'SegmentorForExport', 'export_onnx', 'max_abs_diff',
           'onnx_session', 'run_onnx']
