"""Exporting to ONNX and running the file in ONNX Runtime."""
from typing import List

import torch
from torch import nn

from ..ops.config import onnx_export

#: the opset whose ``DFT`` (opset 20) the FFTs export to
DEFAULT_OPSET = 20


def export_onnx(model: nn.Module, example: torch.Tensor, path: str, dynamic: bool = False,
                opset: int = DEFAULT_OPSET, dft_form: str = 'matmul') -> None:
    """Write ``model`` (eval mode, one image batch in) to ``path`` as ONNX.

    ``dynamic``: symbolic batch, H and W (give an ``example`` with batch >= 2 and
    H, W >= 2: torch.export fixes sizes of 0 and 1). ``dft_form``: the FFTs as
    products with DFT matrices (``'matmul'``) or as ``DFT`` nodes (``'dft'``), see
    ``gfnet_dense.deploy.onnx_fft``. Raises ``RuntimeError`` naming the step that failed.
    """
    import onnx
    if opset < DEFAULT_OPSET:
        raise ValueError(f'--opset {opset}: the FFTs need the DFT operator of opset '
                         f'{DEFAULT_OPSET} or later')
    model.eval()
    shapes = None
    if dynamic:
        if example.shape[0] < 2 or min(example.shape[2:]) < 2:
            raise ValueError('a dynamic export needs an example with batch >= 2 and H, W >= 2, '
                             f'got {tuple(example.shape)}')
        dim = torch.export.Dim.DYNAMIC
        shapes = ({0: dim, 2: dim, 3: dim},)
    with onnx_export(dft_form), torch.no_grad():
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset,
                                    dynamic_shapes=shapes, input_names=['image'],
                                    verbose=False)
    proto = program.model_proto
    # ONNX Runtime 1.32 plans buffers from these annotations and fails on graphs with
    # DFT nodes at symbolic sizes ("Shape mismatch attempting to re-use buffer"); it
    # infers the shapes itself without them
    del proto.graph.value_info[:]
    onnx.save(proto, path)


def onnx_session(path: str, threads: int = 0):
    """An ONNX Runtime CPU session (``threads`` 0: its default), warnings silenced, its
    threads not spinning after a run (spinning takes the cores from whatever runs next
    in the process)."""
    import onnxruntime as ort
    return ort.InferenceSession(path, session_options(threads),
                                providers=['CPUExecutionProvider'])


def session_options(threads: int = 0):
    """``onnx_session``'s options."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


def run_onnx(session, image: torch.Tensor) -> List[torch.Tensor]:
    outputs = session.run(None, {session.get_inputs()[0].name: image.numpy()})
    return [torch.from_numpy(o) for o in outputs]


def flatten_outputs(outputs) -> List[torch.Tensor]:
    """Tensors of a model's output (a tensor, or nested tuples / lists), in order."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [t for o in outputs for t in flatten_outputs(o)]


def max_abs_diff(session, model: nn.Module, image: torch.Tensor, with_magnitude: bool = False):
    """Largest absolute difference between ONNX Runtime's and PyTorch's outputs
    (``with_magnitude``: and the largest absolute PyTorch output, as a pair)."""
    with torch.no_grad():
        expected = flatten_outputs(model(image))
    got = run_onnx(session, image)
    if len(got) != len(expected):
        raise RuntimeError(f'the ONNX file has {len(got)} outputs, the model {len(expected)}')
    diff = max((g.double() - e.double()).abs().max().item() for g, e in zip(got, expected))
    if not with_magnitude:
        return diff
    return diff, max(e.abs().max().item() for e in expected)
