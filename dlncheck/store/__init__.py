"""Storage: the content-addressed trajectory cache, what it keeps on disk and in memory
(``policy``), its lossless on-disk format (``_format``) and atomic writes (no half-written file is
ever visible).

Stage 3 of the pipeline: what the engine trains and measure analyses is kept here, keyed by content.
"""

from __future__ import annotations

from dlncheck.store.atomic import atomic_path, atomic_write, write_json, write_text
from dlncheck.store.cache import TrajectoryCache

__all__ = ["TrajectoryCache", "atomic_path", "atomic_write", "write_json", "write_text"]
