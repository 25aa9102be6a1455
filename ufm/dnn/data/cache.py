"""The ``.npz`` cache of generated or decoded datasets (mnist1d, tinyimagenet), in ``data_root(data_dir)``."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from ufm._core.io import atomic_write
from ufm._core.validation import UFMWarning

__all__ = ["read_npz", "save_cache"]


def read_npz(path: Path, keys: tuple) -> Optional[dict]:
    """The arrays of a cache file, or None when it is absent or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in keys}
    except (OSError, ValueError, KeyError, EOFError):
        return None


def save_cache(path: Path, arrays: dict) -> None:
    """Write the cache atomically (``np.savez``: a reader sees the old file or the new one), or
    warn (and go on without it) when its folder is not writable."""
    try:
        atomic_write(path, lambda fh: np.savez(fh, **arrays), binary=True)
    except OSError as err:
        warnings.warn(f"Could not write the dataset cache {path} ({err}); the data will be built "
                      "again on the next load. Pass a writable data_dir (or set UFM_DATA).", UFMWarning,
                      stacklevel=4)
