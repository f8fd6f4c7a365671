"""Size before work: the bytes ``train`` will hold, refused above a memory budget.

The estimate counts what a run keeps (weights at every checkpoint, the loss record, the working
weights and products, one chunk of batch moments and the per-sample moment table); it is
computed from the Experiment alone, in microseconds, before anything is allocated. The budget
is, in order: the ``memory_budget`` argument, the environment variable DLNCHECK_MEMORY_BUDGET
(bytes, or '4G'), else BUDGET_FRACTION of the memory available now (MemAvailable in
/proc/meminfo, or the free memory of the CUDA device).
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np
import torch

from dlncheck.config import validation as check
from dlncheck.engine import _cost as cost
from dlncheck.engine._batches import CHUNK_ELEMENTS  # batch-index + moment elements per chunk

BUDGET_FRACTION = 0.5
BUDGET_ENV = "DLNCHECK_MEMORY_BUDGET"
RECORD_INDEX_BYTES = 0  # per recorded step beyond the loss itself (the engine keeps arrays, no per-step dict)


class MemoryBudgetExceeded(check.InvalidArgument):
    """A request whose estimated memory exceeds the budget (raised before any work)."""


def available_memory(device: str = "cpu") -> int:
    """Bytes available now: free CUDA memory for a CUDA device, else MemAvailable (Linux), else
    the free physical pages (os.sysconf)."""
    if torch.device(device).type == "cuda":
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def memory_budget(override=None, device: str = "cpu") -> tuple[int, str]:
    """(bytes, where the number comes from)."""
    if override is not None:
        return check.memory_bytes("memory_budget", override), "memory_budget argument"
    if os.environ.get(BUDGET_ENV):
        return check.memory_bytes(BUDGET_ENV, os.environ[BUDGET_ENV]), f"${BUDGET_ENV}"
    return int(BUDGET_FRACTION * available_memory(device)), f"{BUDGET_FRACTION:.0%} of the memory available now"


def grid_points(steps: int, count: int) -> int:
    """How many log-spaced points a checkpoint count draws before rounding (train's
    checkpoint_grid): count - 1, or 0 when every step 0..steps is a checkpoint anyway (count - 2
    above 2 steps ln(steps) + 2: the grid's largest gap, steps (1 - steps^(-1/(count-2))) <=
    steps ln(steps) / (count - 2), is then below 1/2, so each step is some point's rounding)."""
    return 0 if count - 2 > 2 * steps * math.log(max(steps, 2)) + 2 else count - 1


def estimate_bytes(experiment, checkpoints, loss_every: int) -> dict[str, tuple[int, str]]:
    """{part: (bytes, the fields that size it)} for train(experiment, checkpoints, loss_every)."""

    item = torch.finfo(experiment.torch_dtype).bits // 8
    R, d, n, B = experiment.runs, experiment.widths, experiment.n_samples, experiment.batch_size
    K = check.checkpoints("checkpoints", checkpoints, experiment.steps, R)
    T = experiment.steps // loss_every + 2
    params = sum(d[l + 1] * d[l] for l in range(len(d) - 1))
    products = sum(w * d[0] for w in d[1:]) + 2 * max(d[-1] * w for w in d[:-1])
    # train(backend="auto") in the per-sample form (engine._cost) builds no moments (a chunk holds the
    # batch indices only) and keeps a copy of the weights from each segment's start (engine._per_sample)
    per_sample = cost.formulation(d, B, loss_every) == "per-sample"
    per_sample = per_sample and cost.kernel(d, torch.device(experiment.device).type, "per-sample", item) != "torch"
    columns = 0 if per_sample else d[0] * d[0] + (d[-1] * d[0] if experiment.noisy_labels else 0)
    per_epoch = n // B
    moments = max(CHUNK_ELEMENTS, per_epoch * R * (B + columns))
    count = isinstance(checkpoints, (numbers.Number, np.generic)) or (
        torch.is_tensor(checkpoints) and not checkpoints.ndim
    )
    grid = grid_points(experiment.steps, int(checkpoints)) if count else 0
    return {
        "checkpoint grid": (3 * 8 * grid, "checkpoints (a count: log-spaced points drawn, then rounded)"),
        "weights at checkpoints": (R * K * params * item, "checkpoints, sgd_runs, width, depth"),
        "loss record": (T * (2 * R * item + 3 * 8 + RECORD_INDEX_BYTES), "steps / loss_every, sgd_runs"),
        "working weights and products": (R * ((2 + per_sample) * params + products) * item, "sgd_runs, width, depth"),
        "batch moments (one chunk)": (
            moments * (8 + (0 if per_sample else 2 * item)),
            "n_samples / batch_size, sgd_runs",
        ),
        "per-sample moments": (n * (columns + d[0] + d[-1]) * item, "n_samples"),
    }


def _gb(n: int) -> str:
    return f"{n / 1e9:.3g} GB"


def check_budget(experiment, checkpoints, loss_every: int, budget=None) -> int:
    """Raise MemoryBudgetExceeded when train(...) would hold more than the budget; else return
    the estimate (bytes). The message names the largest parts and the fields that shrink them."""
    parts = estimate_bytes(experiment, checkpoints, loss_every)
    total = sum(size for size, _ in parts.values())
    limit, source = memory_budget(budget, experiment.device)
    if total > limit:
        ranked = sorted(parts.items(), key=lambda kv: -kv[1][0])
        detail = "; ".join(f"{name} {_gb(size)} (shrink {fields})" for name, (size, fields) in ranked[:2])
        raise MemoryBudgetExceeded(
            f"memory_budget={_gb(limit)} ({source}) is exceeded: train would hold about {_gb(total)}: "
            f"{detail}. Shrink those fields, or raise the budget with train(..., memory_budget=...) "
            f"or ${BUDGET_ENV}"
        )
    return total
