"""Progress coordinate and matched-progress reading (dlncheck.measure.progress) against a plain NumPy
reference, and a property: monotone on a synthetic sigmoidal staircase."""

import types

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlncheck.measure import progress


def _reference_progress(C: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Loops: group equal singular values, mean diagonal over the group / s, clip, sum."""
    out = np.zeros(C.shape[:-2])
    for value in sorted({float(x) for x in s if x > 0}, reverse=True):
        idx = [a for a in range(len(s)) if s[a] == value]
        out += np.clip(np.mean([C[..., a, a] for a in idx], axis=0) / value, 0, 1)
    return out


def _reference_tau(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Brute force: each run's running max on a fine linear refinement of its checkpoints."""
    fine = np.linspace(t[0], t[-1], 200_001)
    R, K = p.shape
    tau = np.full((R, K), np.nan)
    first = np.zeros((R, K))
    for r in range(R):
        curve = np.maximum.accumulate(np.interp(fine, t, np.maximum.accumulate(p[r])))
        cap = min(np.maximum.accumulate(q)[-1] for q in p)
        for k in range(K):
            level = min(np.maximum.accumulate(p[0])[k], cap)
            hit = np.nonzero(curve >= level - 1e-12)[0]
            first[r, k] = fine[hit[0]] if len(hit) else np.nan
    for r in range(R):
        tau[r] = t + first[r] - first[0]
    return tau


def test_progress_matches_the_numpy_reference_with_a_degenerate_block():
    rng = np.random.default_rng(0)
    s = np.array([3.0, 2.0, 2.0, 1.0, 0.0])
    C = rng.normal(size=(3, 7, 5, 5)) * 2
    got = progress.progress(torch.from_numpy(C), torch.from_numpy(s))
    np.testing.assert_allclose(got.numpy(), _reference_progress(C, s), rtol=1e-12)
    assert got.shape == (3, 7)


def test_match_times_against_brute_force():
    t = np.linspace(0, 10, 41)
    stair = lambda t0: 1 / (1 + np.exp(-3 * (t - t0))) + 1 / (1 + np.exp(-3 * (t - 2 * t0)))  # noqa: E731
    p = np.stack([stair(3.0), stair(3.3), stair(2.8) - 0.01 * np.sin(t)])
    got = progress.match_times(torch.from_numpy(p), torch.from_numpy(t)).numpy()
    np.testing.assert_allclose(got, _reference_tau(p, t), atol=2e-4, equal_nan=True)
    np.testing.assert_allclose(got[0], t)
    assert got[1, -1] > t[-1]  # the late run is read past its end there: unmatched


def test_at_times_interpolates_and_marks_unreached():
    t = torch.tensor([0.0, 1.0, 3.0])
    values = torch.tensor([[[0.0, 1.0], [2.0, 3.0], [6.0, 7.0]]], dtype=torch.float64)
    tau = torch.tensor([[0.5, 2.0, float("nan"), 3.5]], dtype=torch.float64)
    got = progress.at_times(values, t, tau)
    torch.testing.assert_close(got[0, :2], torch.tensor([[1.0, 2.0], [4.0, 5.0]], dtype=torch.float64))
    assert got[0, 2:].isnan().all()


def test_escape_index_counts_own_midpoint_crossings():
    s = torch.tensor([2.0, 1.0])  # plateaus 2.5, 0.5, 0; escape levels 1.5, 0.25
    loss = torch.tensor([[2.5, 2.5, 1.0, 0.4, 0.1], [2.5, 2.5, 2.5, 1.0, 0.4]], dtype=torch.float64)
    times = torch.arange(5, dtype=torch.float64)
    got = progress.escape_index(loss, times, s, times)
    assert got.tolist() == [[0, 0, 1, 1, 2], [0, 0, 0, 1, 1]]


def test_match_times_rejects_a_wrong_shape():
    with pytest.raises(ValueError, match="runs, checkpoints"):
        progress.match_times(torch.zeros(3), torch.zeros(3))


@settings(max_examples=60, deadline=None)
@given(
    centres=st.lists(st.floats(0.5, 20.0), min_size=1, max_size=4),
    widths=st.lists(st.floats(0.05, 3.0), min_size=4, max_size=4),
    s=st.lists(st.floats(0.2, 5.0), min_size=4, max_size=4),
)
def test_progress_is_monotone_on_a_sigmoidal_staircase(centres, widths, s):
    """u_a(t) = s_a sigmoid((t - c_a) / w_a): each stage's fraction rises, so p must not decrease,
    and p runs from about 0 to the number of distinct stages."""
    n = len(centres)
    s = np.sort(np.array(s[:n]))[::-1].copy()
    t = np.linspace(0, 40, 400)
    u = s[:, None] / (1 + np.exp(-(t[None, :] - np.array(centres)[:, None]) / np.array(widths[:n])[:, None]))
    C = np.zeros((len(t), n, n))
    C[:, range(n), range(n)] = u.T
    p = progress.progress(torch.from_numpy(C), torch.from_numpy(s)).numpy()
    assert (np.diff(p) >= -1e-12).all()
    assert p[0] >= 0 and p[-1] <= len(set(s.tolist())) + 1e-12


def test_loss_progress_and_matched_on_agree_with_matched_on_the_stage_coordinate():
    """loss_progress: 0 at GD's start, 1 at the least loss; matched_on with the stage progress is matched."""
    loss = torch.tensor([[2.0, 1.0, 0.5], [2.0, 1.5, 0.5]], dtype=torch.float64)
    np.testing.assert_allclose(progress.loss_progress(loss, 0.5).numpy(), [[0, 2 / 3, 1], [0, 1 / 3, 1]])
    rng = np.random.default_rng(1)
    coeffs = torch.from_numpy(np.sort(rng.uniform(0, 3, (3, 6, 1, 1)), axis=1)) * torch.eye(2, dtype=torch.float64)
    an = types.SimpleNamespace(
        mode_coefficients=coeffs, svals={(1, 1): coeffs.diagonal(dim1=-2, dim2=-1)}, end_to_end=coeffs
    )
    times = torch.linspace(0, 1, 6, dtype=torch.float64)
    a = progress.matched(an, times, [3.0, 1.0])
    b = progress.matched_on(an, times, progress.progress(coeffs, [3.0, 1.0]))
    torch.testing.assert_close(a.tau, b.tau, equal_nan=True)
    torch.testing.assert_close(a.svals[(1, 1)], b.svals[(1, 1)], equal_nan=True)
