"""The fused CPU path: a segment of training steps for every (config, run) row in one C call.

``csrc/fused_step.c`` does exactly the arithmetic of the reference PyTorch path
(``engine._torch_path.advance_torch``), or of the per-sample form (``engine._per_sample``), with
register-tiled loops, one row at a time through all of a segment's steps, so per step there is no
dispatch, no allocation and no Python. It is compiled on first use with the system C compiler
($CC, else gcc or cc; -O3 -march=native) into a per-user cache folder
($DLNCHECK_BUILD_DIR, else $XDG_CACHE_HOME/dlncheck, else ~/.cache/dlncheck), named by the hash of
source, flags and CPU and moved into place atomically (safe under pytest-xdist), then loaded with ctypes.
Without a compiler, or on a GPU, the engine uses the PyTorch path (same numbers to 1e-12).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("csrc") / "fused_step.c"
FLAGS = ("-O3", "-march=native", "-ffp-contract=fast", "-shared", "-fPIC", "-std=c11", "-Wall", "-Werror")
REALS = {torch.float64: "double", torch.float32: "float"}


def _build_dir() -> Path:
    if os.environ.get("DLNCHECK_BUILD_DIR"):
        return Path(os.environ["DLNCHECK_BUILD_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dlncheck"


def _cpu_tag() -> bytes:
    """What -march=native depends on: the machine and its CPU flags (a shared home folder may be
    used by different CPUs, and a kernel built for one may not run on another)."""
    tag = platform.machine()
    try:
        tag += next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        tag += platform.processor()
    return tag.encode()


@cache
def _library(real: str) -> ctypes.CDLL | str:
    """The compiled kernel for C type ``real``, or the reason it is unavailable."""
    names = [os.environ["CC"]] if os.environ.get("CC") else ["gcc", "cc"]
    compiler = next(filter(None, map(shutil.which, names)), None)
    if compiler is None:
        return f"no C compiler found (looked for {' or '.join(names)}; set $CC)"
    flags = (*FLAGS, f"-DREAL={real}")
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + " ".join(flags).encode() + _cpu_tag()).hexdigest()[:16]
    target = _build_dir() / f"fused_step-{real}-{digest}.so"
    if not target.exists():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so.tmp")
            os.close(fd)
            subprocess.run([compiler, *flags, str(SOURCE), "-o", tmp, "-lm"], check=True, capture_output=True)
            os.replace(tmp, target)
        except (OSError, subprocess.CalledProcessError) as error:
            detail = getattr(error, "stderr", b"") or b""
            return f"building {SOURCE.name} failed: {error} {detail.decode(errors='replace')[:300]}"
    lib = ctypes.CDLL(str(target))
    lib.dln_advance.restype = ctypes.c_int
    return lib


def why_not(experiment) -> str | None:
    """None when the fused path can run ``experiment``, else the reason."""
    if torch.device(experiment.device).type != "cpu":
        return "the fused kernel runs on the CPU only"
    lib = _library(REALS[experiment.torch_dtype])
    return lib if isinstance(lib, str) else None


def supports(experiment) -> bool:
    return why_not(experiment) is None


def advance(W, Syx, table, idx, lr, residual, *, run_of=None, per_sample=False, needed=None) -> None:
    """Same contract as engine._torch_path.advance_torch: len(idx) steps for every row of W, in place.
    run_of: the run of every row (default row % runs); per_sample: the SGD rows take the per-sample
    form (engine._per_sample) and write their residual only where ``needed`` (bool per step)."""
    rows, steps, B = W[0].shape[0], idx.shape[0], idx.shape[2]
    runs, dtype = 1 + idx.shape[1], W[0].dtype
    lib = _library(REALS[dtype])
    if isinstance(lib, str):
        raise RuntimeError(f"the fused kernel is unavailable: {lib}")
    widths = [W[0].shape[2]] + [w.shape[1] for w in W]
    lr = torch.as_tensor(lr, dtype=dtype).reshape(-1).expand(rows).contiguous()
    idx = idx.contiguous()
    outer = table.xt if per_sample else table.padded_outer  # the per-sample form needs no moments
    tensors = [*W, Syx, outer, residual, lr] + ([table.xt, table.yt] if per_sample else [])
    if not all(t.is_contiguous() and t.dtype == dtype and t.device.type == "cpu" for t in tensors):
        raise ValueError("fused.advance needs contiguous CPU tensors of one dtype")
    run_of = None if run_of is None else torch.as_tensor(run_of, dtype=torch.int64).contiguous()
    needed = torch.ones(steps, dtype=torch.uint8) if needed is None else torch.as_tensor(needed, dtype=torch.uint8)
    ptr = ctypes.c_void_p
    status = lib.dln_advance(
        ctypes.c_int(len(W)),
        (ctypes.c_int64 * len(widths))(*widths),
        ctypes.c_int64(rows),
        ctypes.c_int64(runs),
        ctypes.c_int64(steps),
        (ptr * len(W))(*[w.data_ptr() for w in W]),
        ptr(lr.data_ptr()),
        ptr(idx.data_ptr()),
        ctypes.c_int64(B),
        ptr(outer.data_ptr()),
        ctypes.c_int64(0 if per_sample else outer.shape[1]),
        ptr(Syx.data_ptr()),
        ptr(residual.data_ptr()),
        ptr(None if run_of is None else run_of.data_ptr()),
        ctypes.c_int(int(per_sample)),
        ptr(needed.contiguous().data_ptr()),
        ptr(table.xt.data_ptr() if per_sample else None),
        ptr(table.yt.data_ptr() if per_sample else None),
    )
    if status != 0:
        raise MemoryError("the fused kernel could not allocate its workspace")
