"""What the models' timm feature API shares: the layouts intermediates come in."""
import torch

OUTPUT_FORMATS = ('NCHW', 'NHWC')


def check_output_fmt(output_fmt: str) -> None:
    if output_fmt not in OUTPUT_FORMATS:
        raise ValueError(f'output_fmt must be one of {OUTPUT_FORMATS}, got {output_fmt!r}')


def to_output_fmt(x: torch.Tensor, layout: str, output_fmt: str) -> torch.Tensor:
    """``x`` in ``layout`` (``'NHWC'`` tokens or ``'NCHW'`` maps) as ``output_fmt``: a
    permuted view, no copy (tokens become channels-last NCHW maps)."""
    if layout == output_fmt:
        return x
    return x.permute(0, 3, 1, 2) if layout == 'NHWC' else x.permute(0, 2, 3, 1)
