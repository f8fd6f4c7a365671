import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlncheck import spectra
from dlncheck.theory import ranks


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), size=st.floats(1e-6, 0.3), n=st.integers(2, 6))
def test_effective_rank_tolerance_bounds_the_change(seed, size, n):
    """|ln r_eff(W) - ln r_eff(M)| <= effective_rank_tolerance(s, ||W - M||_F) for random perturbations."""
    g = torch.Generator().manual_seed(seed)
    s = torch.sort(torch.rand(n, generator=g, dtype=torch.float64) * 4 + 0.1, descending=True).values
    U, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    M = U @ torch.diag(s) @ V.T
    E = torch.randn(n, n, generator=g, dtype=torch.float64)
    W = M + size * E / torch.linalg.matrix_norm(E)
    dev = abs(math.log(spectra.effective_rank(W)) - math.log(spectra.effective_rank_from_svals(s)))
    assert dev <= ranks.effective_rank_tolerance(s.numpy(), float(torch.linalg.matrix_norm(W - M))) + 1e-12


def test_intervals_and_grid():
    s = np.array([4.0, 2.0, 1.0])
    lo, hi = ranks.staircase_interval(1e-4, s, 2.2e-16, (6, 6))
    assert lo == ranks.FLOOR_MARGIN * 1e-4 / 4 and hi == 0.25 / ranks.CEILING_MARGIN
    lo, hi = ranks.lazy_interval(0.3, s, 2.2e-16, (6, 6))
    assert lo == ranks.FLOOR_MARGIN * 6 * 2.2e-16 and hi == 0.3 / 4 / ranks.CEILING_MARGIN
    grid = ranks.grid(1e-7, 1e-1, 3)
    assert len(grid) == 19 and np.isclose(grid[3], 1e-6)
    assert ranks.grid_inside(grid, 1e-6, 1e-5).sum() == 4
    assert ranks.effective_rank_tolerance(s, 100.0) == math.log(3)
