"""theory.rank_gap, theory.offset_band and init_ensembles: closed forms, references, edge cases."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm
from scipy.stats import t as t_dist

from dlncheck import Init, presets
from dlncheck.suite import init_ensembles
from dlncheck.suite.tiers import NIGHTLY, QUICK
from dlncheck.theory import offset_band, rank_gap


def test_summary_counts_inits_with_the_wilson_interval():
    assert init_ensembles.summary([True] * 8)["fraction_lo"] == pytest.approx(0.6756, abs=1e-4)


def test_flip_z_union_bound():
    assert rank_gap.flip_z(8) == pytest.approx(norm.ppf(1 - 0.05 / 8))
    assert 8 * 2196 * norm.sf(rank_gap.flip_z(8 * 2196)) == pytest.approx(0.05)
    assert rank_gap.flip_z(8 * 366 * 6) == pytest.approx(4.53, abs=0.01)
    with pytest.raises(ValueError, match="chances"):
        rank_gap.flip_z(0)


def test_threshold_gap_and_ambiguity():
    # one checkpoint, GD + 3 SGD runs; values 1, 1e-3 (just above tau = 9e-4), 1e-8; every run above tau
    base = torch.tensor([1.0, 1e-3, 1e-8], dtype=torch.float64)
    jitter = torch.tensor([1.0, 1.3, 0.95, 1.1], dtype=torch.float64)[:, None]
    sv = (base * torch.cat([torch.ones(4, 1), jitter, torch.ones(4, 1)], 1))[:, None, :]  # (4, 1, 3)
    g, spread, dof = rank_gap.threshold_gaps(sv, torch.tensor([2]), torch.tensor([9e-4], dtype=torch.float64))
    assert math.isinf(float(dof))  # one count: the plain spread and the normal quantile
    assert float(g) == pytest.approx(math.log(1e-3 / 9e-4))
    assert float(spread) == pytest.approx(float(torch.log(jitter[1:, 0] * 1e-3).std()))  # one count: plain std
    assert bool(rank_gap.ambiguous(g, spread, dof, 3))
    # tau two decades from both deciding values is not ambiguous at the same spread
    g_far, _, _ = rank_gap.threshold_gaps(sv, torch.tensor([2]), torch.tensor([1e-5], dtype=torch.float64))
    assert not bool(rank_gap.ambiguous(g_far, spread, dof, 3))


def _within_count_std_reference(x: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pooled within-group standard deviation and its dof per column, written independently with
    NumPy loops (one group or no within-group dof: the plain std, dof inf)."""
    out, nu = np.empty(x.shape[1]), np.full(x.shape[1], np.inf)
    for col in range(x.shape[1]):
        groups = [x[counts[:, col] == c, col] for c in np.unique(counts[:, col])]
        dof = x.shape[0] - len(groups)
        squares = sum(float(((grp - grp.mean()) ** 2).sum()) for grp in groups)
        out[col] = math.sqrt(squares / dof) if dof > 0 and len(groups) > 1 else float(np.std(x[:, col], ddof=1))
        nu[col] = dof if dof > 0 and len(groups) > 1 else np.inf
    return out, nu


def test_within_count_std_matches_a_numpy_reference():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 50))
    counts = rng.integers(0, 4, size=(8, 50))
    counts[:, 0] = 2  # one group: the plain standard deviation
    counts[:2, 1], counts[2:, 1] = 0, 1
    got, dof = rank_gap.within_count_std(torch.from_numpy(x), torch.from_numpy(counts))
    want, want_dof = _within_count_std_reference(x, counts)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    np.testing.assert_array_equal(dof.numpy(), want_dof)
    assert float(got[0]) == pytest.approx(float(np.std(x[:, 0], ddof=1))) and math.isinf(float(dof[0]))
    assert float(dof[1]) == 6
    pair, pair_dof = rank_gap.within_count_std(
        torch.tensor([[0.0], [1.0]], dtype=torch.float64), torch.tensor([[0], [1]])
    )
    assert float(pair[0]) == pytest.approx(math.sqrt(0.5)) and math.isinf(float(pair_dof[0]))  # no within dof


def _threshold_spread_reference(svals: np.ndarray, r_gd: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """delta per checkpoint: the within-count spread of log sigma_r and log sigma_{r+1}, max of the two."""
    logs = np.log(np.maximum(svals, rank_gap.TINY))
    out = np.zeros(svals.shape[1])
    for k in range(svals.shape[1]):
        counts = (logs[1:, k] > np.log(tau[k])).sum(-1)
        sides = [idx for idx in (r_gd[k] - 1, r_gd[k]) if 0 <= idx < svals.shape[2]]
        spreads = [_within_count_std_reference(logs[1:, k, idx][:, None], counts[:, None])[0][0] for idx in sides]
        out[k] = max(spreads, default=0.0)
    return out


def test_threshold_spread_matches_a_numpy_reference():
    rng = np.random.default_rng(5)
    sv = np.sort(np.exp(rng.normal(-3.0, 2.0, size=(9, 40, 4))), axis=-1)[..., ::-1].copy()
    r_gd = rng.integers(0, 5, size=40)
    tau = np.exp(rng.normal(-3.0, 1.0, size=40))
    _, spread, _ = rank_gap.threshold_gaps(torch.from_numpy(sv), torch.from_numpy(r_gd), torch.from_numpy(tau))
    np.testing.assert_allclose(spread.numpy(), _threshold_spread_reference(sv, r_gd, tau), rtol=1e-12)


def test_a_rank_change_in_any_number_of_runs_leaves_the_spread_at_the_noise():
    # GD + 8 SGD runs, sigma_1 = e^{-1 + 0.01 xi} on GD's side of tau = e^{-2}: g = 1, noise 0.01
    rng = np.random.default_rng(0)
    noise = 0.01 * rng.normal(size=8)
    chances = 8 * 366 * 6  # S = 8 runs, a quick case's asserted (checkpoint, entry) pairs
    z = rank_gap.flip_z(chances)
    for m in range(1, 9):
        logs = np.concatenate([[-1.0], -1.0 + noise])
        logs[1 : 1 + m] -= 1.05  # m runs lose the rank, 5 % past tau
        sv = torch.from_numpy(np.exp(logs))[:, None, None]
        g, spread, dof = rank_gap.threshold_gaps(
            sv, torch.tensor([1]), torch.tensor([math.exp(-2.0)], dtype=torch.float64)
        )
        assert not bool(rank_gap.ambiguous(g, spread, dof, chances)), f"m = {m}"
        assert float(spread) == pytest.approx(
            float(_within_count_std_reference(logs[1:, None], (logs[1:, None] > -2.0))[0][0])
        )
        plain = float(np.std(logs[1:], ddof=1))
        assert m == 8 or z * plain > float(g), "the plain SGD spread would have called it ambiguous"
    assert rank_gap.fewest_detectable_runs(z, 8) == 1


def test_threshold_gap_edges_rank_zero_and_full():
    sv = torch.full((3, 2, 2), 1e-6, dtype=torch.float64)
    g, spread, _ = rank_gap.threshold_gaps(sv, torch.tensor([0, 0]), torch.full((2,), 1e-3, dtype=torch.float64))
    assert torch.allclose(g, torch.full((2,), math.log(1e3), dtype=torch.float64)) and (spread == 0).all()
    g, _, _ = rank_gap.threshold_gaps(sv, torch.tensor([2, 2]), torch.full((2,), 1e-9, dtype=torch.float64))
    assert torch.allclose(g, torch.full((2,), math.log(1e3), dtype=torch.float64))


def test_offset_band_formula():
    std, off = torch.tensor([0.1, 0.0]), torch.tensor([0.02, -0.5])
    tol = offset_band.offset_tolerance(std, 8, off, 0.2, 3)
    z = norm.ppf(1 - 0.05 / 6)
    np.testing.assert_allclose(tol.numpy(), [z * 0.1 / 8**0.5 + 0.004 + 1e-8, 0.1 + 1e-8], rtol=1e-6)
    with pytest.raises(ValueError, match="sgd_runs"):
        offset_band.offset_tolerance(std, 1, off, 0.2, 3)


def test_case_ensemble_sizes_and_trap_rule():
    exp = presets.experiment("saddle", "fullrank", 3)
    ens = init_ensembles.case_ensemble(exp, QUICK.ensembles)
    kinds = [i.kind for i in ens.inits]
    assert len(ens) == 8 and kinds.count("balanced") == 4 and kinds.count("gaussian") == 4
    assert len(init_ensembles.case_ensemble(exp, NIGHTLY.ensembles)) == 32
    ntk = presets.experiment("ntk", "lowrank", 3)
    assert [i.seed for i in init_ensembles.case_ensemble(ntk, QUICK.ensembles).inits] == [0, 1, 2, 3]
    # balanced W_0 = c O: trapped iff det O disagrees with det M; non-square teachers never
    M = exp.teacher.M
    flip = torch.eye(4, dtype=torch.float64)
    flip[0, 0] = -1.0 if torch.linalg.det(M) > 0 else 1.0
    weights = [flip * 0.05, torch.eye(4, dtype=torch.float64) * 0.05, torch.eye(4, dtype=torch.float64) * 0.05]
    assert init_ensembles.trapped(weights, exp, Init("balanced", 0.05))
    assert not init_ensembles.trapped(weights, exp, Init("gaussian", 0.05))
    low = presets.experiment("saddle", "lowrank", 3)
    assert not init_ensembles.trapped([torch.eye(6, dtype=torch.float64)] * 3, low, Init("balanced", 0.05))


def test_pattern_gaps_are_the_per_product_gaps():
    g = torch.Generator().manual_seed(0)
    svals = {
        (i, j): torch.rand(3, 5, 4, generator=g, dtype=torch.float64).sort(-1, descending=True).values
        for i in range(1, 3)
        for j in range(i, 3)
    }
    r_gd = torch.randint(0, 5, (5, 2, 2), generator=g)
    gaps, spread, dof = rank_gap.pattern_gaps(svals, r_gd, 0.3, 0.05)
    for (i, j), sv in svals.items():
        tau = torch.clamp(0.3 * sv[0, :, 0], min=0.05)
        want = rank_gap.threshold_gaps(sv, r_gd[:, i - 1, j - 1], tau)
        torch.testing.assert_close(gaps[:, i - 1, j - 1], want[0], rtol=0, atol=0)
        torch.testing.assert_close(spread[:, i - 1, j - 1], want[1], rtol=0, atol=0)
        torch.testing.assert_close(dof[:, i - 1, j - 1], want[2], rtol=0, atol=0)


def test_flip_t_is_student_t_and_flip_z_at_infinite_dof():
    nu = torch.tensor([math.inf, 6.0, 1.0], dtype=torch.float64)
    np.testing.assert_allclose(
        rank_gap.flip_t(400, nu).numpy(), [rank_gap.flip_z(400), t_dist.isf(0.05 / 400, 6), t_dist.isf(0.05 / 400, 1)]
    )


def test_the_rule_keeps_its_false_rejection_rate_under_the_null():
    # S = 8 SGD runs, log sigma ~ N(0, 1), GD at 0, tau c below: a run crossing tau is chance; the rule
    # must leave it unexcluded (g >= t delta) with probability <= alpha / entries (the union bound's
    # share of one entry); Monte Carlo over 200000 draws per c at a quick case's z (4.53)
    rng = np.random.default_rng(0)
    chances = 8 * 366 * 6
    for c in (0.5, 1.0, 2.0, 3.0, 4.0):
        logs = rng.normal(size=(9, 200_000))
        logs[0] = 0.0
        sv = torch.from_numpy(np.exp(logs))[:, :, None]
        tau = torch.full((200_000,), math.exp(-c), dtype=torch.float64)
        g, spread, dof = rank_gap.threshold_gaps(sv, torch.ones(200_000, dtype=torch.long), tau)
        crossed = torch.from_numpy((logs[1:] < -c).any(0))
        missed = crossed & ~rank_gap.ambiguous(g, spread, dof, chances)
        assert float(missed.double().mean()) <= 0.05 / (chances / 8), f"c = {c}"
