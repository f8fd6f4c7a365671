"""dlncheck.measure.analysis: one-pass spectra vs a per-matrix NumPy loop, grouping equivalence, cache
round trip, and the SVD-grouping measurement (ratio, one thread, same run)."""

import time

import numpy as np
import pytest
import torch

from dlncheck import presets
from dlncheck.measure.analysis import Analysis, analyze
from dlncheck.spectra import grouped_singular_values, partial_products
from dlncheck.store.cache import TrajectoryCache


@pytest.fixture(scope="module")
def traj():
    exp = presets.experiment("intermediate", "lowrank", 3, sgd_runs=2, steps=30)
    return TrajectoryCache(None)(exp, checkpoints=4)


def _numpy_loop(weights):
    """Independent reference: products and np.linalg.svd per (run, checkpoint, i, j)."""
    W = [w.numpy() for w in weights]
    R, K, L = W[0].shape[0], W[0].shape[1], len(W)
    out = {}
    for i in range(1, L + 1):
        for j in range(i, L + 1):
            rows = []
            for r in range(R):
                for k in range(K):
                    P = W[i - 1][r, k]
                    for m in range(i, j):
                        P = W[m][r, k] @ P
                    rows.append(np.linalg.svd(P, compute_uv=False))
            out[(i, j)] = np.stack(rows).reshape(R, K, -1)
    return out


def test_singular_values_match_numpy_loop(traj):
    a = analyze(traj)
    ref = _numpy_loop(traj.weights)
    assert set(a.svals) == set(ref)
    for key, s in ref.items():
        np.testing.assert_allclose(a.svals[key].numpy(), s, rtol=1e-10, atol=1e-12 * s.max())
    W = traj.weights[2] @ traj.weights[1] @ traj.weights[0]
    torch.testing.assert_close(a.end_to_end, W, rtol=1e-12, atol=1e-14)
    U, V = traj.teacher.U, traj.teacher.V
    torch.testing.assert_close(a.mode_coefficients, U.T @ W @ V, rtol=1e-12, atol=1e-14)


def test_grouping_up_to_transpose_equals_grouping_by_shape(traj):
    products = partial_products(traj.weights)
    by_shape = grouped_singular_values(products, transpose=False)
    up_to_t = grouped_singular_values(products, transpose=True)
    for key in products:
        torch.testing.assert_close(by_shape[key], up_to_t[key], rtol=1e-12, atol=1e-14)


def test_cache_round_trip(tmp_path, traj):
    exp = traj.experiment
    first = TrajectoryCache(tmp_path).analysis(exp, checkpoints=4)
    again = TrajectoryCache(tmp_path).analysis(exp, checkpoints=4)
    assert len(list(tmp_path.glob("analysis-*.npz"))) == 1
    for key in first.svals:
        assert torch.equal(first.svals[key], again.svals[key])
    assert torch.equal(first.mode_coefficients, again.mode_coefficients)
    assert again.depth == 3


def test_cache_analysis_of_a_trajectory_in_hand_trains_nothing(tmp_path, traj, monkeypatch):
    import dlncheck.store.cache as cache_module

    monkeypatch.setattr(cache_module, "train", lambda *a, **k: pytest.fail("trained again"))
    given = TrajectoryCache(tmp_path).analysis(traj.experiment, trajectory=traj, checkpoints=4)
    for key, values in analyze(traj).svals.items():
        assert torch.equal(given.svals[key], values)


def test_from_arrays_names_missing_field():
    with pytest.raises(ValueError, match="svals_i_j"):
        Analysis.from_arrays({"end_to_end": np.zeros((1, 1, 2, 2))}, teacher=None)


def test_nan_weights_are_refused(traj):
    broken = type(traj)(**{**traj.__dict__, "weights": [w.clone() for w in traj.weights]})
    broken.weights[0][0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        analyze(broken)


def test_grouping_choice_measured():
    """The measurement behind transpose=True: ntk-sized products (widths 6, 128, 128, 6), both
    groupings timed in the same run (interleaved rounds, min of 5: this machine is shared); grouping
    up to a transpose must not be slower than 1.25x."""
    g = torch.Generator().manual_seed(0)
    widths = (6, 128, 128, 6)
    weights = [torch.randn(3, 20, b, a, generator=g, dtype=torch.float64) for a, b in zip(widths, widths[1:])]
    products = partial_products(weights)

    def timed(transpose):
        start = time.perf_counter()
        grouped_singular_values(products, transpose)
        return time.perf_counter() - start

    rounds = [(timed(False), timed(True)) for _ in range(5)]  # interleaved: load hits both sides alike
    by_shape, up_to_t = (min(side) for side in zip(*rounds))
    print(f"svdvals grouped by shape {by_shape * 1e3:.1f} ms, up to transpose {up_to_t * 1e3:.1f} ms")
    assert up_to_t <= 1.25 * by_shape
