"""dlncheck.suite.init_ensembles: the ensembles of a case and the statistics over inits, against SciPy."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
from scipy.stats import norm

from dlncheck import Ensemble, EnsembleTrajectory, Init, presets
from dlncheck.measure import events
from dlncheck.suite import init_ensembles
from dlncheck.suite.tiers import NIGHTLY, QUICK, TIERS
from dlncheck.theory import mode_dynamics as tm
from dlncheck.theory.tolerances import bonferroni_z


def test_over_inits_counts_and_bonferroni():
    out = init_ensembles.summary([True] * 7 + [False])
    assert (out["n_inits"], out["n_pass"], out["fraction"]) == (8, 7, 0.875)
    assert bonferroni_z(1) == pytest.approx(norm.ppf(0.975))
    assert bonferroni_z(8) == pytest.approx(norm.ppf(1 - 0.05 / 16))
    with pytest.raises(ValueError, match="n_tests"):
        bonferroni_z(0)


@pytest.mark.parametrize("tier, n", [("quick", 8), ("nightly", 32)])
def test_saddle_ensemble_is_half_balanced_half_gaussian_small_random_inits(tier, n):
    exp = presets.experiment("saddle", "lowrank", 3)
    ens = init_ensembles.case_ensemble(exp, TIERS[tier].ensembles)
    kinds = [i.kind for i in ens.inits]
    assert len(ens) == n and kinds.count("balanced") == kinds.count("gaussian") == n // 2
    assert len({(i.kind, i.seed) for i in ens.inits}) == n
    assert ens.base.steps == 2 * exp.steps
    gaussian = next(i for i in ens.inits if i.kind == "gaussian")
    assert gaussian.scale == pytest.approx(exp.init.scale / math.sqrt(max(exp.widths[1:-1])))


@pytest.mark.parametrize("tier, n", [("quick", 4), ("nightly", 8)])
def test_other_regimes_use_seeds_of_the_preset_init(tier, n):
    exp = presets.experiment("ntk", "lowrank", 3)
    ens = init_ensembles.case_ensemble(exp, TIERS[tier].ensembles, sgd_runs=4)
    assert [i.seed for i in ens.inits] == list(range(n)) and {i.kind for i in ens.inits} == {"lecun"}
    assert ens.base.sgd_runs == 4


class _Recorder:
    """A stand-in cache that records what a case asks to train (nothing is trained)."""

    def ensemble(self, ens, checkpoints):
        self.ens, self.grid = ens, checkpoints
        return EnsembleTrajectory(ens, [types.SimpleNamespace(initial_weights=None)] * len(ens))

    def analysis(self, experiment, trajectory, checkpoints):
        return None


@pytest.mark.parametrize("depth, width", [(2, 1024), (2, 2048), (3, 1024)])
def test_wide_runs_fit_their_byte_budget(depth, width):
    exp = presets.experiment("ntk", "lowrank", depth, sgd_runs=32, width=width)
    cache = _Recorder()
    ens, runs = init_ensembles.wide_runs(exp, NIGHTLY.ensembles, cache)
    assert ens is cache.ens and len(runs) == len(ens) and ens.base.sgd_runs == NIGHTLY.ensembles.check_sgd_runs
    assert [i.seed for i in ens.inits] == list(range(len(ens))) and ens.base.steps == exp.steps
    stored = len(ens) * len(cache.grid) * events.checkpoint_bytes(ens.base)
    assert stored <= init_ensembles.WIDE_BYTES and len(cache.grid) >= init_ensembles.WIDE_MIN_CHECKPOINTS
    if depth == 2:  # no h x h layer: the tier's inits on the preset's own grid
        assert len(ens) == NIGHTLY.ensembles.other and cache.grid == init_ensembles.analysis_grid(ens.base)
    else:
        assert 1 <= len(ens) < NIGHTLY.ensembles.other and len(cache.grid) < len(init_ensembles.analysis_grid(exp))


def test_lazy_rho_at_diag_matches_uniform_decay_simulation():
    """Simulate w(t) = S + (w0 - S) e^{-t} on a fine grid and read rho_a at t_diag directly."""
    g = np.random.default_rng(0)
    s = torch.tensor([3.0, 1.0, 0.4], dtype=torch.float64)
    w0 = torch.as_tensor(0.5 * g.standard_normal((3, 3)))
    t = torch.linspace(0, 10, 200001, dtype=torch.float64)
    f = torch.exp(-t)[:, None, None]
    w = torch.diag(s) + (w0 - torch.diag(s)) * f
    diag = torch.diagonal(w, dim1=-2, dim2=-1).abs()
    off = (w - torch.diag_embed(torch.diagonal(w, dim1=-2, dim2=-1))).norm(dim=-1)
    k = (diag >= 0.5 * s).int().argmax(0)
    rho_sim = torch.stack([off[k[a], a] / w[k[a], a].norm() for a in range(3)])
    off0 = (w0 - torch.diag(torch.diagonal(w0))).norm(dim=-1)
    rho = tm.lazy_rho_at_diag(torch.diagonal(w0), off0, s, 0.5)
    assert torch.allclose(rho, rho_sim, rtol=1e-3)


@pytest.mark.parametrize("teacher", presets.TEACHERS)
@pytest.mark.parametrize("depth", NIGHTLY.depths)
def test_random_ensembles_run_past_every_predicted_escape(teacher, depth):
    """The random-init ensembles' run length (presets.random_small_init: twice the aligned preset)
    covers, for every init the det-sign rule does not trap, the decoupled escape time of its slowest
    mode from its own initial projection u0 (theory.escape_time) plus the preset's convergence margin
    10 / (L s_min^{2-2/L}): a run that ends before that escape would be a length defect, not a finding."""
    from dlncheck import theory
    from dlncheck.config.data import init_weights
    from dlncheck.measure import modes

    exp = presets.experiment("saddle", teacher, depth, sgd_runs=NIGHTLY.sgd_runs)
    ens = init_ensembles.case_ensemble(exp, NIGHTLY.ensembles)
    s, n = exp.teacher.s, exp.teacher.rank
    margin = 10 / (depth * float(s[n - 1]) ** (2 - 2 / depth))
    for i in range(len(ens)):
        e = ens.experiment(i)
        W = init_weights(e)
        if init_ensembles.trapped(W, e, ens.inits[i]):
            continue
        u0 = modes.initial_mode_strength(W, e.teacher.U, e.teacher.V, n).abs()
        t_last = float(theory.escape_time(s[:n], u0, depth).max())
        assert t_last + margin <= e.steps * e.lr, init_ensembles.init_label(ens.inits[i])


@pytest.mark.parametrize("teacher, depth, longer", [("lowrank", 2, False), ("degenerate", 3, True)])
def test_random_run_steps_end_after_gds_last_escape(teacher, depth, longer):
    """The quick ensemble runs until GD of every untrapped init is past its last escape (its loss
    below the midpoint of the last two plateaus), checked on an independent GD run per init;
    lowrank-L2 keeps twice the aligned length, degenerate-L3 needs longer (GD's escapes come later
    than the decoupled prediction from the init projection)."""
    import dataclasses

    from dlncheck import train
    from dlncheck.measure import events

    exp = presets.experiment("saddle", teacher, depth)
    ens = init_ensembles.case_ensemble(exp, QUICK.ensembles)
    assert (ens.base.steps > 2 * exp.steps) == longer and ens.base.steps <= init_ensembles.PILOT_CAP * exp.steps
    level = float(events.escape_levels(exp.teacher.s[: exp.teacher.rank])[-1])
    for i in range(len(ens)):
        gd = train(dataclasses.replace(ens.experiment(i), sgd_runs=0), checkpoints=[0, ens.base.steps])
        assert float(gd.loss[0, -1]) < level, init_ensembles.init_label(ens.inits[i])


@pytest.mark.parametrize("teacher", ["lowrank", "fullrank"])
def test_aligned_escape_windows_hold_gds_own_escapes(teacher):
    """An aligned init is decoupled: theory's u0 is a0^L exactly (not the middle-layer rms proxy,
    diluted by the unused directions of a width-8 layer), and GD's measured escapes (loss below
    the midpoint of consecutive plateaus, on an independent GD-only run) fall inside the windows."""
    import dataclasses

    from dlncheck import train
    from dlncheck.measure import events

    exp = presets.experiment("saddle", teacher, 3)
    gd = train(dataclasses.replace(exp, sgd_runs=0), loss_every=1)
    n, L = exp.teacher.rank, exp.depth
    t_esc, windows = init_ensembles.predicted_windows(gd)
    s = exp.teacher.s[:n]
    expected = tm.escape_time(s, torch.full((n,), exp.init.scale**L, dtype=torch.float64), L)
    np.testing.assert_allclose(t_esc.numpy(), expected.numpy(), rtol=1e-9)
    measured = events.escape_steps(gd.loss, torch.arange(gd.loss.shape[-1]), s)[0].double() * exp.lr
    assert (measured > 0).all()
    assert bool(events.in_windows(measured, windows).all()), (measured, windows)


def test_ensemble_runs_of_a_large_ensemble_come_one_config_at_a_time(tmp_path, monkeypatch):
    """init_ensembles.ensemble_runs over a config-by-config ensemble (store.policy.LAZY_ENSEMBLE_GB)
    is itself an OnDemand sequence: nothing trained before a read, and each (trajectory, analysis,
    trapped) equal to the eager reading's."""
    from dlncheck.store import policy
    from dlncheck.store.cache import TrajectoryCache
    from dlncheck.store.lazy import OnDemand

    exp = presets.experiment("saddle", "lowrank", 2, sgd_runs=2, steps=60)
    ens = Ensemble(exp, [Init("gaussian", 1e-2, seed=s) for s in range(2)])
    _, eager = init_ensembles.ensemble_runs(exp, ens, TrajectoryCache(tmp_path / "eager"))
    monkeypatch.setattr(policy, "LAZY_ENSEMBLE_GB", 0.0)
    cache = TrajectoryCache(tmp_path / "lazy")
    _, lazy = init_ensembles.ensemble_runs(exp, ens, cache)
    assert isinstance(lazy, OnDemand) and cache.stats["computed"] == 0 and len(lazy) == 2
    for (t1, a1, trapped1), (t2, a2, trapped2) in zip(eager, lazy):
        torch.testing.assert_close(t1.loss, t2.loss, rtol=1e-12, atol=0)
        assert trapped1 == trapped2 and a1.to_arrays().keys() == a2.to_arrays().keys()
