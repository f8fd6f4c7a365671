"""The record one claim leaves: its folder, figures and tables, and its verdict (in the record).

A claim writes into a private building folder (``claims/.building-<pid>-<name>``); the
collector swaps it in under ``claims/<name>`` when the test ends (:mod:`dlncheck.report.store`),
so an interrupted test never leaves a half-written case folder behind a link.
"""

from __future__ import annotations

import hashlib
import lzma
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from dlncheck.report.figure_files import THUMB_SUFFIX, save_figure
from dlncheck.store import atomic

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
GOLDEN_PATH = ("agrees", "differs", "assumption-fails", "n/a")
BUILDING = ".building-"
THUMB_WIDTH = 360  # px: thumbnails written beside the full-size figures the index shows
INDEX_THUMBS = 2  # the index's case table shows a case's first figures, this many, as thumbnails
DPI = 130  # full-size figures: 10 pt text is 18 px high; 150 dpi cost a third more bytes (issue #27: report size)
#: tables as csv.xz, preset 4: on 67 tables of 40 quick-tier cases (4.5 MB of CSV text), 675 kB in
#: 3.2 s, against 1296 kB in 0.4 s for gzip level 6 and 674 kB in 4.6 s for xz preset 6
CSV_XZ_PRESET = 4
#: 10 significant digits (relative 5e-11, far below any plotted difference): on the 28 tables of a
#: 20-case subset, gzip of full 17-digit floats kept 33 % of the plain CSV's bytes, of these 22 %
CSV_FLOAT_FORMAT = "%.10g"


def folder_name(nodeid: str) -> str:
    """A filesystem-safe, readable and collision-proof folder name for a pytest node id.

    ``claims/test_balance.py::test_balance[saddle-lowrank-L3]`` ->
    ``test_balance.test_balance.saddle-lowrank-L3-<8 hex of sha1(nodeid)>``; ids that sanitize
    alike (``a<b``, ``a>b``, ``a b``) differ in the hash.
    """
    path, _, rest = nodeid.partition("::")
    stem = Path(path).stem
    name = _UNSAFE.sub("_", f"{stem}.{rest}".replace("::", ".").replace("[", ".").rstrip("]"))
    digest = hashlib.sha1(nodeid.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{name.strip('._')[:120]}-{digest}"


def jsonable(value):
    """Plain-JSON version of numbers from torch / NumPy (tensors become lists)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()] if value.ndim else jsonable(value.item())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def key_metric(numbers: dict, key: str | None = None) -> tuple[str | None, float | None]:
    """The number tracked across runs: ``numbers[key]`` if named, else the first finite float
    (a measurement rather than a count), else the first finite integer."""

    def finite(value: object, kinds: type | tuple[type, ...]) -> float | None:
        """``value`` as a float if it is a finite number of ``kinds`` (never a bool), else None."""
        if isinstance(value, (int, float)) and isinstance(value, kinds) and not isinstance(value, bool):
            return float(value) if math.isfinite(value) else None
        return None

    if key:
        return key, finite(numbers.get(key), (int, float))
    for kinds in (float, int):
        for name, value in numbers.items():
            if (number := finite(value, kinds)) is not None:
                return name, number
    return None, None


@dataclass(frozen=True)
class Prediction:
    """One row of a claim module's prediction table: what theory predicts for the case, why,
    and whether theory is silent there (exploratory: only what theory guarantees is asserted)."""

    prediction: str
    reason: str
    exploratory: bool = False
    kind: str = ""  # a family's selector of what is asserted (e.g. growth "unit", scope "plateaus")


@dataclass
class Claim:
    """What one claim test writes. Created fresh (in an empty building folder) for every test.

    ``figure`` and ``table`` write atomically; ``verdict`` records the theory's prediction,
    what was observed, whether it holds, what it says about the golden path, and the numbers
    that decided it. Artifact paths name the final folder ``claims/<folder_name>``.
    """

    svg: ClassVar[bool] = False  # also write each figure as SVG (``pytest claims --svg``)
    nodeid: str
    root: Path
    artifacts: list[dict] = field(default_factory=list)
    verdict_record: dict | None = None

    def __post_init__(self):
        self.folder = folder_name(self.nodeid)
        self.dir = self.root / "claims" / f"{BUILDING}{os.getpid()}-{self.folder}"
        self.dir.mkdir(parents=True, exist_ok=False)

    def _add(self, kind: str, path: Path, caption: str, name: str | None = None, **extra) -> Path:
        self.artifacts.append(
            {
                "kind": kind,
                "path": f"claims/{self.folder}/{path.name}",
                "name": name or path.stem,
                "caption": caption,
                **extra,
            }
        )
        return path

    def figure(self, fig, name: str, caption: str = "") -> Path:
        """Save ``fig`` as ``<name>.webp`` (``DPI``, lossless), for the case's first ``INDEX_THUMBS``
        figures (those the index shows) a thumbnail ``<name>.thumb.webp``, and with
        ``--svg``, ``<name>.svg`` in this claim's folder, then close it."""
        import matplotlib.pyplot as plt

        stem = _UNSAFE.sub("_", name)
        path = self.dir / f"{stem}.webp"
        shown = sum(a["kind"] == "figure" for a in self.artifacts) < INDEX_THUMBS
        try:
            save_figure(fig, path, dpi=DPI, thumb_width=THUMB_WIDTH if shown else None, svg=self.svg)
        finally:
            plt.close(fig)
        return self._add(
            "figure",
            path,
            caption,
            thumb=f"claims/{self.folder}/{stem}{THUMB_SUFFIX}" if shown else None,
            vector=f"claims/{self.folder}/{stem}.svg" if self.svg else None,
        )

    def table(self, df, name: str, caption: str = "") -> Path:
        """Save a tidy DataFrame as ``<name>.csv.xz`` in this claim's folder (xz, which
        ``pandas.read_csv`` reads as it is, as does ``xz -d``; the same table gives the same bytes).
        Floats are written to ``CSV_FLOAT_FORMAT``: the figures' data, not the verdict's numbers
        (those are in ``results.json`` at full precision)."""
        stem = _UNSAFE.sub("_", name)
        path = self.dir / f"{stem}.csv.xz"
        text = df.to_csv(index=False, float_format=CSV_FLOAT_FORMAT).encode("utf-8")
        data = lzma.compress(text, preset=CSV_XZ_PRESET)
        atomic.atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
        return self._add("table", path, caption, name=stem)

    def verdict(
        self,
        *,
        prediction: str,
        observed: str = "",
        holds: bool,
        exploratory: bool = False,
        reason: str = "",
        golden_path: str | None = None,
        key: str | None = None,
        **numbers,
    ) -> bool:
        """Record the verdict (the collector puts it in the case's record in ``results.json``; no
        file of its own: one 4 kB block per case, issue #27); returns ``holds`` so a test can
        ``assert claim.verdict(...)``.

        ``golden_path`` (one of ``GOLDEN_PATH``) overrides the family's default reading of
        this verdict (its ``family`` mark: :class:`dlncheck.suite.family.Family`); ``key`` names the number
        tracked across runs for drift (default: the first finite scalar in ``numbers``).
        """
        if golden_path is not None and golden_path not in GOLDEN_PATH:
            raise ValueError(f"golden_path={golden_path!r} is invalid: use one of {GOLDEN_PATH}")
        numbers = jsonable(numbers)
        if key is not None and key not in numbers:
            raise ValueError(
                f"key={key!r} is not among the verdict's numbers {sorted(numbers)}; pass it as a keyword number too"
            )
        key_name, key_value = key_metric(numbers, key)
        self.verdict_record = {
            "prediction": str(prediction),
            "observed": str(observed),
            "holds": bool(holds),
            "exploratory": bool(exploratory),
            "reason": str(reason),
            "golden_path": golden_path,
            "key": key_name,
            "key_value": key_value,
            "numbers": numbers,
        }
        return bool(holds)
