"""dlncheck.init_ensembles and theory.modes.lazy_rho_at_diag against independent references."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest

from dlncheck import init_ensembles, presets
from dlncheck.theory import modes as tm


@given(st.integers(1, 60), st.data())
def test_wilson_matches_scipy(n, data):
    k = data.draw(st.integers(0, n))
    lo, hi = init_ensembles.wilson_interval(k, n)
    ref = binomtest(k, n).proportion_ci(0.95, method="wilson")
    assert lo == pytest.approx(ref.low, abs=2e-4) and hi == pytest.approx(ref.high, abs=2e-4)


def test_wilson_rejects_bad_counts():
    with pytest.raises(ValueError, match="successes"):
        init_ensembles.wilson_interval(3, 2)


def test_saddle_ensemble_mixes_balanced_and_gaussian():
    exp = presets.experiment("saddle", "lowrank", 3)
    ens = init_ensembles.init_ensemble(exp, "quick")
    kinds = [i.kind for i in ens.inits]
    assert len(ens) == init_ensembles.N_INITS["quick"] and kinds.count("balanced") == kinds.count("gaussian")
    assert len({(i.kind, i.seed) for i in ens.inits}) == len(ens)
    assert ens.base.steps == 2 * exp.steps
    ntk = init_ensembles.init_ensemble(presets.experiment("ntk", "lowrank", 2), "quick")
    assert {i.kind for i in ntk.inits} == {"lecun"} and len(ntk) == init_ensembles.N_INITS_OTHER["quick"]


def test_init_summary_counts_inits():
    out = init_ensembles.init_summary([True, False, True, True])
    assert (out["n_inits"], out["n_holds"], out["fraction_inits"]) == (4, 3, 0.75)


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
