"""CPU threads per process: one unless asked otherwise.

The engine's and the analysis's tensors are small (10x10 to 128x128, batched): with two or more
intra-op threads torch spends its time synchronising (measured on 2 cores: a plain
``pytest claims`` took 732 s with 2 threads against 507 s with one; batched 128x128 SVDs were
9-15x slower). Parallelism comes from processes (``pytest -n``), not threads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

ENV = "DLNCHECK_THREADS"


def set_cpu_threads(requested: int | str | None = "auto") -> int:
    """torch.set_num_threads(n) with n = ``requested``, or for "auto"/None $DLNCHECK_THREADS, else 1.
    Returns n."""
    from_env = requested is None or requested == "auto"
    value = requested if requested is not None and not from_env else os.environ.get(ENV, "1")
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        source = f"${ENV}" if from_env else "the option"
        raise ValueError(f"threads={value!r} is invalid (from {source}): give a positive number of CPU threads, e.g. 1")
    torch.set_num_threads(n)
    return n


@contextmanager
def cpu_threads(device: str, n: int = 1) -> Iterator[None]:
    """Run with n intra-op CPU threads (nothing changes on other devices): the engine's matmuls are
    tiny, and threading them only adds synchronisation (25x slower per step on a busy 2-core machine)."""
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
