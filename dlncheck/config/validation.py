"""One validation layer for every public entry point: each bad argument gets a clear error.

Every check either returns the value in its canonical form (an ``int``, a ``float``, a list
of tensors) or raises :class:`InvalidArgument` whose message reads
``field=value is invalid: <the fix>``, so a user sees which argument, what was passed and
what to pass instead. ``InvalidArgument`` is both a ``ValueError`` and a ``TypeError``:
callers may catch either.
"""

from __future__ import annotations

import math
import numbers
import shutil
import tempfile
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch

MAX_DEPTH = 128  # layers; deeper requests are refused before any work (O(L^2) products)
MAX_STEPS = 10**8  # steps; the Python step loop runs ~1e4-1e5 steps/s, so 1e8 is hours
DTYPES = {"float64": torch.float64, "float32": torch.float32}
REPORTS_MIN_FREE = 16 * 2**20  # bytes: a report folder on a disk with less is refused before any training


class InvalidArgument(ValueError, TypeError):
    """A public argument with a wrong type or value; the message names field, value and fix."""


def fail(field: str, value, fix: str) -> NoReturn:
    text = _short(value)
    if len(text) > 120:
        text = text[:117] + "..."
    raise InvalidArgument(f"{field}={text} is invalid: {fix}")


def _short(value) -> str:
    """One line: small tensors and arrays as values, larger ones as shape and dtype."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        size = value.numel() if torch.is_tensor(value) else value.size
        if size > 8 or value.ndim > 1:
            kind = "tensor" if torch.is_tensor(value) else "array"
            return f"<{kind} of shape {tuple(value.shape)}, {value.dtype}>"
    return " ".join(repr(value).split())


def _is_scalar_tensor(value) -> bool:
    return isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0


def integral(field: str, value, min: int | None = None, max: int | None = None, why: str = "") -> int:
    """``value`` as an int: an integer, or a float with no fractional part; never bool or str.
    ``why`` explains the bounds in the message."""
    if _is_scalar_tensor(value):
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        fail(field, value, f"pass an integer{_range(min, max)}{why}")
    if isinstance(value, numbers.Integral):
        out = int(value)
    else:
        number = float(value)
        if not (math.isfinite(number) and number.is_integer()):
            fail(field, value, f"pass a whole number{_range(min, max)}{why} (it is not rounded for you)")
        out = int(number)
    if (min is not None and out < min) or (max is not None and out > max):
        fail(field, value, f"pass an integer{_range(min, max)}{why}")
    return out


def _range(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    return f" >= {lo}" if lo is not None else (f" <= {hi}" if hi is not None else "")


def finite_float(
    field: str, value, min: float | None = None, positive: bool = False, max: float | None = None
) -> float:
    """``value`` as a finite float (>= min, > 0 if ``positive``, <= max); never bool or str."""
    if _is_scalar_tensor(value):
        value = value.item()
    bound = (" > 0" if positive else (f" >= {min}" if min is not None else "")) + (
        f" and <= {max}" if max is not None else ""
    )
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        fail(field, value, f"pass a finite number{bound}")
    out = float(value)
    if (
        not np.isfinite(out)
        or (positive and not out > 0)
        or (min is not None and out < min)
        or (max is not None and out > max)
    ):
        fail(field, value, f"pass a finite number{bound}")
    return out


def nonneg(field: str, value) -> float:
    return finite_float(field, value, min=0.0)


def seed(field: str, value) -> int:
    """A seed: an integer in [0, 2^63 - 1] (torch.Generator.manual_seed's range)."""
    return integral(field, value, min=0, max=2**63 - 1)


def one_of(field: str, value, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        fail(field, value, f"choose one of {tuple(choices)}")
    return value


def dtype(field: str, value) -> str:
    """A supported floating dtype name ('float64' or 'float32'); torch dtypes are named."""
    if isinstance(value, torch.dtype):
        value = str(value).removeprefix("torch.")
    return one_of(field, value, DTYPES)


def device(field: str, value) -> str:
    """A device string this machine has: 'cpu', or 'cuda'/'cuda:i' when CUDA is available."""
    if isinstance(value, torch.device):
        value = str(value)
    if not isinstance(value, str):
        fail(field, value, "pass a device string such as 'cpu' or 'cuda'")
    try:
        parsed = torch.device(value)
    except RuntimeError:
        fail(field, value, "pass a device string such as 'cpu' or 'cuda'")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            fail(
                field,
                value,
                "CUDA was asked for but torch.cuda.is_available() is False on this "
                "machine (no GPU or a CPU-only torch build); use device='cpu'",
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            fail(
                field,
                value,
                f"this machine has {torch.cuda.device_count()} CUDA device(s); use 'cuda' or a smaller index",
            )
    elif parsed.type != "cpu":
        fail(field, value, "dlncheck runs on 'cpu' or 'cuda'")
    return value


def depth(field: str, value, min: int = 1) -> int:
    return integral(
        field,
        value,
        min=min,
        max=MAX_DEPTH,
        why=f" (weight matrices; deeper than MAX_DEPTH={MAX_DEPTH} is refused before any work)",
    )


def steps(field: str, value) -> int:
    out = integral(field, value, min=1)
    if out > MAX_STEPS:
        fail(
            field,
            value,
            f"at most {MAX_STEPS:.0e} steps are allowed (the step loop would run "
            "for hours); use a larger lr or split the run",
        )
    return out


def real_sequence(field: str, value) -> tuple[float, ...]:
    """A list/tuple of finite non-negative numbers (singular values)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, np.ndarray, torch.Tensor)):
        fail(field, value, "pass a list or tuple of numbers")
    values = value.tolist() if isinstance(value, (np.ndarray, torch.Tensor)) else list(value)
    if isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim != 1:
        fail(field, value, "pass a flat list of numbers")
    return tuple(nonneg(f"{field}[{i}]", v) for i, v in enumerate(values))


def int_sequence(field: str, value, min: int | None = None) -> tuple[int, ...]:
    """A list/tuple of integers (indices, widths)."""
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, (list, tuple, np.ndarray, torch.Tensor, range))
        or getattr(value, "ndim", 1) != 1
    ):
        fail(field, value, "pass a flat list or tuple of integers")
    return tuple(integral(f"{field}[{i}]", v, min=min) for i, v in enumerate(value))


# ----------------------------------------------------------------------------- files
def writable_folder(field: str, path, min_free: int = 0) -> Path:
    """A folder that exists or can be created, takes a new file (probed, not guessed: a read-only
    mount or a file in the way fails) and, when ``min_free`` > 0, has that many bytes free."""
    if path is None or (isinstance(path, str) and not path.strip()):
        fail(field, path, "pass a folder path (an empty path would write into the current folder)")
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
        free = shutil.disk_usage(path).free if min_free else 0
    except OSError as error:
        fail(field, str(path), f"the folder cannot be written ({error.strerror or error}); choose a writable folder")
    if free < min_free:
        fail(
            field,
            str(path),
            f"its disk has {free / 1e6:.3g} MB free, under the {min_free / 1e6:.3g} MB its files need; "
            "free some space or choose a folder on another disk",
        )
    return path


def memory_bytes(field: str, value) -> int:
    """A byte count: an integer, or a string with a K/M/G/T suffix (binary units), e.g. '4G'."""
    if not isinstance(value, str):
        return integral(field, value, min=1)
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    unit = "KMGT".find(text[-1:]) + 1 if text[-1:].isalpha() else 0
    try:
        number = float(text[:-1] if unit else text)
    except ValueError:
        number = float("nan")
    if not (np.isfinite(number) and number > 0) or (text[-1:].isalpha() and not unit):
        fail(field, value, "pass a byte count such as 4000000000 or '4G' (K, M, G, T: powers of 1024)")
    return int(number * 1024**unit)


def flag(field: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        fail(field, value, "pass True or False")
    return bool(value)


def checkpoints(field: str, value, steps: int, runs: int) -> int:
    """None, a count >= 2, a non-empty list of whole steps in [0, steps], or an (runs, K) table
    of per-run steps (-1 = skip); returns the number of checkpoints K (at most)."""
    if value is None:
        return 2
    if isinstance(value, (numbers.Number, np.generic)) or _is_scalar_tensor(value):
        count = integral(field, value, min=2, why=" (a count includes step 0 and the last step)")
        return min(count, steps + 1)
    if not isinstance(value, (list, tuple, range, np.ndarray, torch.Tensor)):
        fail(field, value, "pass None, a count, a list of steps or a (runs, K) table")
    try:
        table = np.asarray(value.cpu() if torch.is_tensor(value) else value)
    except (ValueError, TypeError):
        fail(field, value, "pass a list of integer steps (or a rectangular (runs, K) table)")
    if table.size == 0:
        fail(field, value, "pass at least one step (e.g. checkpoints=[0, steps] or a count)")
    if table.dtype.kind not in "iuf" or table.ndim not in (1, 2) or (table.ndim == 2 and table.shape[0] != runs):
        fail(field, value, f"pass a count, a list of integer steps, or a (runs={runs}, K) table of per-run steps")
    if not (np.isfinite(table).all() and (table == np.round(table)).all()):
        fail(field, value, "checkpoint steps are whole numbers (they are not rounded for you)")
    low = -1 if table.ndim == 2 else 0
    if (table < low).any() or (table > steps).any():
        fail(field, value, f"checkpoint steps lie in [0, steps={steps}] (-1 skips a per-run checkpoint)")
    return table.shape[-1]
