"""CPU threads per process: one unless asked otherwise.

The engine's and the analysis's tensors are small (10x10 to 128x128, batched): with two or more
intra-op threads torch spends its time synchronising (measured on 2 cores: a plain
``pytest claims`` took 732 s with 2 threads against 507 s with one; batched 128x128 SVDs were
9-15x slower). Parallelism comes from processes (``pytest -n``), not threads.
"""
from __future__ import annotations

import os

ENV = "DLNCHECK_THREADS"


def set_cpu_threads(requested: int | str | None = "auto") -> int:
    """torch.set_num_threads(n) with n = ``requested``, or for "auto"/None $DLNCHECK_THREADS, else 1.
    Returns n."""
    import torch

    value = os.environ.get(ENV, "1") if requested in (None, "auto") else requested
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"threads={value!r} is invalid (from {'$' + ENV if requested in (None, 'auto') else 'the option'}): "
                         "give a positive number of CPU threads, e.g. 1")
    torch.set_num_threads(n)
    return n
