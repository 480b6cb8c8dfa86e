"""Named numpy arrays in one zip file, written byte for byte the same for the same arrays.

``np.savez`` stamps each member with the current time; here every member has a fixed
time, so two exports of the same model are identical files. Reading never unpickles.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_arrays(path: Path, arrays: Mapping[str, np.ndarray], compress: bool = False) -> None:
    """Write ``arrays`` to ``path`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(tmp, "w", compression=method) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(
                buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False
            )
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = method
            archive.writestr(info, buffer.getvalue())
    os.replace(tmp, path)


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read every array of ``path``; raise ValueError (or BadZipFile, OSError) when broken."""
    out = {}
    with np.load(path, allow_pickle=False) as archive:
        for name in archive.files:
            out[name] = archive[name]
    return out
