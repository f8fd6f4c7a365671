"""Naive per-matrix NumPy baselines that the benchmarks time against the batched code."""

import time


def products_one_by_one(W, r, k):
    """Yield (i, j, P_ij) for run r, checkpoint k: one NumPy matmul at a time (0-based i <= j)."""
    L = len(W)
    for i in range(L):
        P = W[i][r, k]
        for j in range(i, L):
            if j > i:
                P = W[j][r, k] @ P
            yield i, j, P


def timed_min(fn, *args, rounds: int = 3):
    """(result, seconds): the baseline side of a benchmark ratio, min over ``rounds`` calls (as the
    batched side is read: the min of its pedantic rounds)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
    return result, best
