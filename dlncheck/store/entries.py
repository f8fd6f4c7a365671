"""One cache entry on disk: ``<kind>-<key>.npz`` (the arrays, :mod:`dlncheck.store._format`) and
``<kind>-<key>.json`` (spec, layout, the npz's SHA-256), the json written last.

Both files are written to a temporary file and moved into place (os.replace), and the same arrays
always give the same npz bytes, so writers of one entry in several processes agree and a reader
sees a complete entry or none; a writer killed between the two files leaves an npz without json,
which is no entry (it is rewritten). A reader verifies format, key and checksum before decoding.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from dlncheck._version import __version__
from dlncheck.store import _format as cache_format
from dlncheck.store.atomic import sha256, write_json


def plain(value):
    """JSON-able form of a keyword argument (tensors and arrays become lists)."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return np.asarray(value.cpu() if isinstance(value, torch.Tensor) else value).tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def paths(root: Path, kind: str, key: str) -> tuple[Path, Path]:
    return root / f"{kind}-{key}.npz", root / f"{kind}-{key}.json"


def write(root: Path, kind: str, key: str, experiment: dict, kwargs: dict, arrays: dict, meta: dict) -> None:
    """The npz, then the json that makes it an entry. A failed json takes its npz back, so an
    error (a full disk) leaves no half entry."""
    npz, spec = paths(root, kind, key)
    digest, layout = cache_format.write(npz, arrays)
    record = {
        "kind": kind,
        "key": key,
        "version": __version__,
        "format": cache_format.FORMAT,
        "sha256": digest,
        "layout": layout,
        "experiment": experiment,
        "kwargs": {k: plain(v) for k, v in kwargs.items() if k != "progress"},
        "meta": meta,
    }
    try:
        write_json(spec, record)
    except OSError:
        if not spec.exists():  # another writer's json would make the (identical) npz an entry
            npz.unlink(missing_ok=True)
        raise


def read(root: Path, kind: str, key: str, decode):
    """``decode(arrays, meta)`` of the entry, or None when it is absent or, with a warning, unreadable."""
    npz, spec = paths(root, kind, key)
    if not (npz.exists() and spec.exists()):
        return None
    try:
        meta = json.loads(spec.read_text())
        if meta["key"] != key or meta["format"] != cache_format.FORMAT or meta["sha256"] != sha256(npz):
            raise ValueError("checksum, key or format mismatch")
        return decode(cache_format.read(npz, meta["layout"]), meta["meta"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        warnings.warn(f"cache entry {npz.name} is unreadable ({error}); recomputing it", stacklevel=4)
        return None
