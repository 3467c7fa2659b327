"""Data layer: download, parse, normalise and split cross-domain rating data.

Every loader returns the universal frame (columns ``user`` str, ``item`` str,
``rating`` float32, ``timestamp`` int64 or -1); :func:`load_task` maps a task
name to a (source, target, info) triple and :func:`make_cdr_split` indexes and
splits it. See docs/INTERFACES.md.
"""

from pfcdr_jax.data.errors import DataError, DownloadError
from pfcdr_jax.data.download import default_data_dir
from pfcdr_jax.data.splits import CDRData, DomainData, make_cdr_split, save_manifest
from pfcdr_jax.data.synthetic import make_synthetic_cdr
from pfcdr_jax.data.tasks import TASK_NAMES, load_task

__all__ = [
    "CDRData", "DataError", "DomainData", "DownloadError", "TASK_NAMES", "default_data_dir",
    "load_task", "make_cdr_split", "make_synthetic_cdr", "save_manifest",
]
