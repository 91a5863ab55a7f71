"""Everything about checkpoint files, in one place.

* ``reading``: files read as data (torch zip format, safetensors), never run;
* ``download``: URLs and MMEngine's ``open-mmlab://`` names, fetched with a timeout,
  a size cap and checked contents;
* ``layouts``: the layouts we meet (released, pretraining, MMEngine, cvnets) and
  fitting them to a model (resizing filters and ``pos_embed``);
* ``cvnets``: the public AFFNet's key names <-> ours;
* ``checks``: fit, finiteness and training-state checks with one-line errors;
* ``files``: atomic saving and file digests.

No other module of the package or its tools calls ``torch.load`` or a safetensors reader.
"""
from .checks import (CheckpointMismatchError, check_finite, check_training_state, load_into,
                     mismatch_report, nonfinite_keys, show_key, show_keys)
from .files import file_sha256, save_atomic
from .layouts import adapt_state_dict, select_prefix, unwrap_state_dict
from .reading import (UnreadableCheckpointError, UnsafeCheckpointError, check_is_file,
                      load_file, read_checkpoint)

__all__ = [
    'CheckpointMismatchError', 'UnreadableCheckpointError', 'UnsafeCheckpointError',
    'adapt_state_dict', 'check_finite', 'check_is_file', 'check_training_state',
    'file_sha256', 'load_file', 'load_into', 'mismatch_report', 'nonfinite_keys',
    'read_checkpoint', 'save_atomic', 'select_prefix', 'show_key', 'show_keys',
    'unwrap_state_dict']
