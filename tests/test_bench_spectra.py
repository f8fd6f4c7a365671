"""Speed: batched spectra of every partial product vs a per-matrix NumPy loop, one run.

Size from the foundation issue: R = 33 runs, K = 50 checkpoints, L = 4, d = 20, i.e.
10 products x 1650 matrices. The ratio is stored in the benchmark's extra_info and printed.
"""

import numpy as np
import torch
from naive import products_one_by_one, timed_min

from dlncheck import spectra

R, K, L, D, EPS = 33, 50, 4, 20, 1e-5


def numpy_loop(weights):
    """The naive baseline: one product and one SVD per (run, checkpoint, i, j)."""
    W = [w.numpy() for w in weights]
    ranks = np.zeros((R, K, L, L), dtype=np.int64)
    for r in range(R):
        for k in range(K):
            for i, j, P in products_one_by_one(W, r, k):
                s = np.linalg.svd(P, compute_uv=False)
                ranks[r, k, i, j] = (s > EPS * s[0]).sum()
    return ranks


def test_batched_rank_patterns_beat_numpy_loop(benchmark):
    g = torch.Generator().manual_seed(0)
    weights = [torch.randn(R, K, D, D, generator=g, dtype=torch.float64) for _ in range(L)]
    reference, naive = timed_min(numpy_loop, weights, rounds=3)
    batched = benchmark.pedantic(spectra.rank_pattern, args=(weights, EPS), rounds=3, iterations=1)
    assert np.array_equal(batched.numpy(), reference)
    ratio = naive / benchmark.stats.stats.min
    benchmark.extra_info.update(naive_s=naive, speedup=ratio)
    print(
        f"\nrank patterns R={R} K={K} L={L} d={D}: numpy loop {naive:.3f} s, "
        f"batched {benchmark.stats.stats.min:.3f} s, speedup {ratio:.1f}x"
    )
    assert ratio > 1.0, f"batched spectra slower than the per-matrix loop ({ratio:.2f}x)"
