"""dlncheck.measure.events (time grids) against direct NumPy computations and exact properties."""

import numpy as np

from dlncheck.measure import events

rng = np.random.default_rng(0)


def test_time_grid():
    g = events.time_grid(1000, n_linear=10, n_log=5)
    assert g[0] == 0 and g[-1] == 1000 and g == sorted(set(g)) and 100 in g and 1 in g


def test_time_grid_is_capped_by_memory_and_keeps_its_ends():
    from dlncheck import presets

    grid = events.time_grid(10_000, max_points=50)
    assert grid[0] == 0 and grid[-1] == 10_000 and len(grid) <= 50
    assert events.time_grid(10_000) == events.time_grid(10_000, max_points=10_000)
    wide = presets.experiment("ntk", "lowrank", 4, sgd_runs=32)  # 33 runs x 50k params
    per_checkpoint = wide.runs * sum(a * b for a, b in zip(wide.widths[1:], wide.widths[:-1])) * 8
    grid = events.time_grid_for(wide)
    assert grid[-1] == wide.steps and len(grid) * per_checkpoint <= 2**28
    small = presets.experiment("saddle", "lowrank", 3)
    assert events.time_grid_for(small) == events.time_grid(small.steps)
