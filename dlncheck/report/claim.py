"""The record one claim leaves: its folder, figures, tables and verdict."""
from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlncheck import atomic

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def folder_name(nodeid: str) -> str:
    """A filesystem-safe, readable folder name for a pytest node id.

    ``claims/test_balance.py::test_balance[saddle-lowrank-L3]`` ->
    ``test_balance.test_balance.saddle-lowrank-L3``.
    """
    path, _, rest = nodeid.partition("::")
    stem = Path(path).stem
    name = _UNSAFE.sub("_", f"{stem}.{rest}".replace("::", ".").replace("[", ".").rstrip("]"))
    return name.strip("._")[:150]


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


@dataclass(frozen=True)
class Prediction:
    """One row of a claim module's prediction table: what theory predicts for the case, why,
    and whether theory is silent there (exploratory: only what theory guarantees is asserted)."""

    prediction: str
    reason: str
    exploratory: bool = False
    kind: str = ""            # a family's selector of what is asserted (e.g. growth "unit", scope "plateaus")


@dataclass
class Claim:
    """What one claim test writes. Created fresh (its folder emptied) for every test run.

    ``figure`` and ``table`` write atomically; ``verdict`` records the theory's prediction,
    what was observed, whether it holds, and the numbers that decided it.
    """

    nodeid: str
    root: Path
    artifacts: list[dict] = field(default_factory=list)
    verdict_record: dict | None = None

    def __post_init__(self):
        self.dir = self.root / "claims" / folder_name(self.nodeid)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)

    def _add(self, kind: str, path: Path, caption: str) -> Path:
        self.artifacts.append({"kind": kind, "path": path.relative_to(self.root).as_posix(),
                               "name": path.stem, "caption": caption})
        return path

    def figure(self, fig, name: str, caption: str = "") -> Path:
        """Save ``fig`` as ``<name>.png`` in this claim's folder and close it."""
        import matplotlib.pyplot as plt

        path = self.dir / f"{_UNSAFE.sub('_', name)}.png"
        try:
            atomic.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
        finally:
            plt.close(fig)
        return self._add("figure", path, caption)

    def table(self, df, name: str, caption: str = "") -> Path:
        """Save a tidy DataFrame as ``<name>.csv`` in this claim's folder."""
        path = self.dir / f"{_UNSAFE.sub('_', name)}.csv"
        atomic.atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
        return self._add("table", path, caption)

    def verdict(self, *, prediction: str, observed: str, holds: bool,
                exploratory: bool = False, **numbers) -> bool:
        """Record the verdict; returns ``holds`` so a test can ``assert claim.verdict(...)``."""
        self.verdict_record = {"prediction": str(prediction), "observed": str(observed),
                               "holds": bool(holds), "exploratory": bool(exploratory),
                               "numbers": jsonable(numbers)}
        atomic.write_json(self.dir / "verdict.json", self.verdict_record)
        return bool(holds)
