"""dlncheck.diagnostics against direct NumPy computations and exact properties."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlncheck import balance, events, modes, stagewise, theory

rng = np.random.default_rng(0)


def _chain(dims, scale=1.0, batch=(), seed=0):
    g = np.random.default_rng(seed)
    return [torch.as_tensor(scale * g.standard_normal(batch + (dims[l + 1], dims[l])))
            for l in range(len(dims) - 1)]


def _balanced_chain(dims_hidden, r, seed=0):
    """W_l = R_l diag(a) R_{l-1}^T with orthogonal R: exactly balanced (D_l = 0)."""
    g = np.random.default_rng(seed)
    Rs = [np.linalg.qr(g.standard_normal((d, d)))[0] for d in dims_hidden]
    a = np.diag(g.uniform(0.5, 2.0, r))
    return [torch.as_tensor(Rs[l + 1][:, :r] @ a @ Rs[l][:, :r].T) for l in range(len(dims_hidden) - 1)]


# ------------------------------------------------------------------------------ balance
def test_balance_residual_matches_numpy():
    Ws = _chain([4, 5, 3, 2], batch=(2, 3))
    r = balance.balance_residuals(Ws)
    assert r.shape == (2, 3, 2)
    A = [W.numpy() for W in Ws]
    for i in range(2):
        for k in range(3):
            for l in range(2):
                Wl, Wn = A[l][i, k], A[l + 1][i, k]
                num = np.linalg.norm(Wl @ Wl.T - Wn.T @ Wn)
                den = np.linalg.norm(Wl @ Wl.T) + np.linalg.norm(Wn.T @ Wn)
                assert r[i, k, l].item() == pytest.approx(num / den, rel=1e-12)


def test_balanced_chain_has_zero_residual():
    Ws = _balanced_chain([6, 5, 5, 4], r=3)
    assert balance.balance_residuals(Ws).abs().max().item() < 1e-13


@settings(max_examples=25, deadline=None)
@given(c=st.floats(1e-3, 1e3), seed=st.integers(0, 10_000))
def test_balance_residual_scale_invariant_and_bounded(c, seed):
    Ws = _chain([3, 4, 4, 2], seed=seed)
    r = balance.balance_residuals(Ws)
    r_scaled = balance.balance_residuals([c * W for W in Ws])
    assert torch.allclose(r, r_scaled, rtol=1e-9, atol=1e-14)
    assert torch.all((r >= 0) & (r <= 1))


def test_balance_rejects_single_layer():
    with pytest.raises(ValueError, match="at least 2 layers"):
        balance.balance_residuals(_chain([3, 3]))


def _gd_path(Ws, M, lr, steps):
    """Plain NumPy GD on 0.5||W_L..W_1 - M||^2, every step kept: (steps+1, d, d) per layer."""
    Ws = [W.copy() for W in Ws]
    path = [[W.copy()] for W in Ws]
    L = len(Ws)
    for _ in range(steps):
        prod = [np.eye(Ws[0].shape[1])]
        for W in Ws:
            prod.append(W @ prod[-1])
        E = prod[-1] - M
        grads, above = [None] * L, np.eye(M.shape[0])
        for l in reversed(range(L)):
            grads[l] = above.T @ E @ prod[l].T
            above = above @ Ws[l]
        Ws = [W - lr * G for W, G in zip(Ws, grads)]
        for p, W in zip(path, Ws):
            p.append(W.copy())
    return [torch.as_tensor(np.stack(p)) for p in path]


def test_drift_identity_holds_for_gd_and_bounds_residual():
    g = np.random.default_rng(1)
    M = g.standard_normal((3, 4))
    Ws = [0.3 * g.standard_normal(s) for s in [(5, 4), (5, 5), (3, 5)]]
    path = _gd_path(Ws, M, lr=0.05, steps=200)
    out = balance.drift_identity(path)
    assert out["error"].max().item() < 1e-12
    r = balance.balance_residuals(path)
    assert torch.all(r <= out["bound"] * (1 + 1e-12) + 1e-15)
    # D_l actually moved (lr^2 terms are not zero here), so the check is not vacuous
    D = balance.balance_matrices(path)
    assert max((D_l[-1] - D_l[0]).norm().item() for D_l in D) > 1e-6


def test_drift_identity_detects_non_gradient_update():
    g = np.random.default_rng(2)
    M = g.standard_normal((3, 3))
    path = _gd_path([0.5 * g.standard_normal((3, 3)) for _ in range(2)], M, lr=0.05, steps=50)
    path[0] = path[0] * (1 - 1e-3) ** torch.arange(51, dtype=torch.float64)[:, None, None]  # decay on W_1
    assert balance.drift_identity(path)["error"].max().item() > 1e-6


def test_balanced_prediction_formula():
    s = torch.tensor([4.0, 1.0, 0.0])
    got = theory.balanced_residual_prediction(torch.tensor(0.2), s, depth=2)
    assert got.item() == pytest.approx(0.2 / (2 * math.sqrt(16 + 1)))


# ---------------------------------------------------------------------- mode coefficients
def test_complete_basis_extends_thin_u():
    U = torch.as_tensor(np.linalg.qr(rng.standard_normal((6, 2)))[0])
    Q = modes.complete_basis(U)
    assert torch.allclose(Q[:, :2], U, atol=1e-13)
    assert torch.allclose(Q.T @ Q, torch.eye(6, dtype=torch.float64), atol=1e-13)


def test_mode_coefficients_of_teacher_are_diagonal_and_match_numpy():
    U = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    V = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    s = np.array([3.0, 2.0, 1.0])
    M = U[:, :3] @ np.diag(s) @ V[:, :3].T
    w = modes.mode_coefficients(torch.as_tensor(M), torch.as_tensor(U[:, :3]), torch.as_tensor(V[:, :3]))
    expected = np.zeros((5, 4))
    expected[:3, :3] = np.diag(s)
    assert np.allclose(w.numpy(), expected, atol=1e-12)
    W = rng.standard_normal((2, 5, 4))
    wb = modes.mode_coefficients(torch.as_tensor(W), torch.as_tensor(U), torch.as_tensor(V))
    assert np.allclose(wb.numpy(), U.T @ W @ V, atol=1e-12)
    e = modes.cross_energy(wb)
    for k in range(2):
        tot = (wb[k] ** 2).sum().item()
        assert e["total"][k].item() == pytest.approx(tot)
        assert e["cross"][k].item() == pytest.approx(tot - sum(wb[k, i, i].item() ** 2 for i in range(4)))


def test_row_offdiag_excludes_degenerate_block():
    w = torch.tensor([[2.0, 1.0, 0.5], [1.0, 2.0, 0.0], [3.0, 0.0, 1.0]], dtype=torch.float64)
    s = torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64)
    out = modes.row_offdiag(w, s)
    # rows 0,1 form a block: only column 2 is "off"; row 2 is simple
    assert out["max"].tolist() == [0.5, 0.0, 3.0]
    assert out["rho"][0].item() == pytest.approx(0.5 / math.sqrt(4 + 1 + 0.25))
    assert out["rho"][2].item() == pytest.approx(3 / math.sqrt(10))
    assert modes.degenerate_blocks(s) == [[0, 1], [2]]
    assert stagewise.multiplicity_levels(s) == [0, 2, 3]


@settings(max_examples=20, deadline=None)
@given(c=st.floats(1e-6, 1e6), seed=st.integers(0, 1000))
def test_rho_is_scale_free(c, seed):
    w = torch.as_tensor(np.random.default_rng(seed).standard_normal((3, 4, 4)))
    s = torch.tensor([3.0, 2.0, 1.0, 0.5], dtype=torch.float64)
    assert torch.allclose(modes.row_offdiag(w, s)["rho"], modes.row_offdiag(c * w, s)["rho"], rtol=1e-10)


def test_crossing_times_first_hits():
    t = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    s = torch.tensor([2.0, 1.0], dtype=torch.float64)
    # mode 0: off-diag falls at t=1, diag >= 1 at t=2; mode 1: diag reaches 0.5 at t=3, off never small
    w = torch.zeros(4, 2, 2, dtype=torch.float64)
    w[:, 0, 0] = torch.tensor([0.1, 0.5, 1.2, 2.0])
    w[:, 0, 1] = torch.tensor([1.0, 0.01, 0.01, 0.0])
    w[:, 1, 1] = torch.tensor([0.1, 0.1, 0.2, 0.6])
    w[:, 1, 0] = torch.tensor([1.0, 1.0, 1.0, 1.0])
    out = modes.crossing_times(w, s, t, eps_rho=0.1, eps_abs=0.05)
    assert out["t_diag"].tolist() == [2.0, 3.0]
    assert out["t_cross"].tolist() == [1.0, math.inf]
    assert out["t_cross_abs"].tolist() == [1.0, math.inf]
    # per-run times broadcast: batch of 2 runs with shifted clocks
    tb = torch.stack([t, t + 10])
    out_b = modes.crossing_times(torch.stack([w, w]), s, tb)
    assert out_b["t_diag"].tolist() == [[2.0, 3.0], [12.0, 13.0]]


# ------------------------------------------------------------------------- rank growth
def test_growth_statistics_by_hand():
    r = torch.tensor([[0, 1, 1, 2, 3, 3], [0, 2, 1, 3, 3, 3]])
    g = stagewise.growth_statistics(r)
    assert g["unit"].tolist() == [1.0, 0.0]
    assert g["nonmonotone"].tolist() == [0.0, pytest.approx(1 / 3)]
    assert g["max_jump"].tolist() == [1, 2]
    assert g["final"].tolist() == [3, 3]
    assert math.isnan(stagewise.growth_statistics(torch.tensor([2, 2, 2]))["unit"].item())


def test_follows_levels_unit_and_multiplicity():
    r = torch.tensor([[0, 1, 2, 3], [0, 0, 2, 3], [0, 1, 3, 3], [1, 2, 3, 3]])
    assert stagewise.follows_levels(r, [0, 1, 2, 3]).tolist() == [True, False, False, False]
    assert stagewise.follows_levels(r, [0, 2, 3]).tolist() == [False, True, False, False]


def test_transition_gaps_match_numpy():
    sv = torch.tensor([[1.0, 1e-9, 1e-10], [1.0, 0.5, 1e-9], [1.0, 0.5, 1e-9]], dtype=torch.float64)
    r = torch.tensor([1, 2, 2])
    gaps = stagewise.transition_gaps(sv, r)
    assert math.isnan(gaps[0].item()) and math.isnan(gaps[2].item())
    assert gaps[1].item() == pytest.approx(0.5 / 1e-9)


def test_seed_variance():
    r = torch.tensor([[1, 2], [3, 2]])
    assert stagewise.seed_variance(r, run_dim=0).tolist() == [1.0, 0.0]


@settings(max_examples=50, deadline=None)
@given(flags=st.lists(st.booleans(), min_size=1, max_size=12))
def test_eps_plateau_is_longest_true_run(flags):
    eps = torch.logspace(-8, -8 + len(flags) - 1, len(flags), dtype=torch.float64)
    out = stagewise.eps_plateau(torch.tensor(flags), eps)
    best, cur = 0, 0
    for f in flags:
        cur = cur + 1 if f else 0
        best = max(best, cur)
    if best == 0:
        assert out["decades"] == -math.inf
    else:
        assert out["decades"] == pytest.approx(best - 1)
        lo_i = int(round(math.log10(out["lo"]))) + 8
        assert all(flags[lo_i:lo_i + best])


def test_eps_plateau_rejects_unsorted_grid():
    with pytest.raises(ValueError, match="strictly increasing"):
        stagewise.eps_plateau(torch.tensor([True, True]), torch.tensor([1e-3, 1e-5]))


def test_ranks_over_eps_matches_spectra_numerical_rank():
    from dlncheck import spectra
    A = torch.as_tensor(rng.standard_normal((3, 5, 4))) * torch.tensor([1.0, 1e-3, 1e-6, 1e-9])
    sv = spectra.singular_values(A)
    eps = torch.logspace(-8, -2, 4, dtype=torch.float64)
    rel = stagewise.ranks_over_eps(sv, eps)
    absr = stagewise.ranks_over_eps(sv, eps, atol=eps * 50.0)
    for e in range(4):
        assert torch.equal(rel[e], spectra.numerical_rank(A, eps[e].item()))
        assert torch.equal(absr[e], spectra.numerical_rank(A, eps[e].item(), atol=eps[e].item() * 50.0))


def test_initial_mode_strength_l2_by_hand():
    g = np.random.default_rng(3)
    W1, W2 = g.standard_normal((4, 3)), g.standard_normal((5, 4))
    U, V = np.linalg.qr(g.standard_normal((5, 5)))[0], np.linalg.qr(g.standard_normal((3, 3)))[0]
    u0 = modes.initial_mode_strength([torch.as_tensor(W1), torch.as_tensor(W2)], torch.as_tensor(U),
                                  torch.as_tensor(V), 2)
    for a in range(2):
        assert u0[a].item() == pytest.approx(np.linalg.norm(W2.T @ U[:, a]) * np.linalg.norm(W1 @ V[:, a]))


def test_rho_upper_bound_holds():
    g = np.random.default_rng(5)
    U, V = np.linalg.qr(g.standard_normal((4, 4)))[0], np.linalg.qr(g.standard_normal((4, 4)))[0]
    s = np.array([3.0, 2.0, 1.0, 0.0])
    M = U @ np.diag(s) @ V.T
    W = M + 0.05 * g.standard_normal((6, 4, 4))
    rho = modes.row_offdiag(modes.mode_coefficients(torch.as_tensor(W), torch.as_tensor(U), torch.as_tensor(V)),
                         torch.as_tensor(s))["rho"]
    bound = modes.rho_upper_bound(torch.as_tensor(W), torch.as_tensor(M), torch.as_tensor(s))
    assert torch.all(rho <= bound)


def test_time_grid():
    g = events.time_grid(1000, n_linear=10, n_log=5)
    assert g[0] == 0 and g[-1] == 1000 and g == sorted(set(g)) and 100 in g and 1 in g


def test_guaranteed_rank_is_a_lower_bound():
    from dlncheck import spectra
    g = np.random.default_rng(7)
    U, V = np.linalg.qr(g.standard_normal((5, 5)))[0], np.linalg.qr(g.standard_normal((4, 4)))[0]
    s = np.array([3.0, 1.0, 0.1, 0.0])
    M = U[:, :4] @ np.diag(s) @ V.T
    W = torch.as_tensor(M + 0.02 * g.standard_normal((8, 5, 4)))
    eps = torch.logspace(-6, -1, 6, dtype=torch.float64)
    lower = stagewise.guaranteed_rank(W, torch.as_tensor(M), torch.as_tensor(s), eps, atol=eps * 3.0)
    actual = stagewise.ranks_over_eps(spectra.singular_values(W), eps, atol=eps * 3.0)
    assert torch.all(lower <= actual) and lower.max() == 3 and lower.min() == 2


def test_stagewise_criteria():
    r = torch.tensor([[0, 1, 2, 2], [3, 3, 2, 3], [2, 3, 3, 3]])
    c = stagewise.stagewise_criteria(r, [0, 1, 2])
    assert c["starts_at_0"].tolist() == [True, False, False]
    assert c["monotone"].tolist() == [True, False, True]
    assert c["staircase"].tolist() == [True, False, False]
    assert c["reaches_r"].tolist() == [True, False, False]
    assert c["at_least_r"].tolist() == [False, True, True]


def test_time_grid_is_capped_by_memory_and_keeps_its_ends():
    from dlncheck import presets

    grid = events.time_grid(10_000, max_points=50)
    assert grid[0] == 0 and grid[-1] == 10_000 and len(grid) <= 50
    assert events.time_grid(10_000) == events.time_grid(10_000, max_points=10_000)
    wide = presets.experiment("ntk", "lowrank", 4, tier="nightly")        # 33 runs x 50k params
    per_checkpoint = wide.runs * sum(a * b for a, b in zip(wide.widths[1:], wide.widths[:-1])) * 8
    grid = events.time_grid_for(wide)
    assert grid[-1] == wide.steps and len(grid) * per_checkpoint <= 2 ** 28
    small = presets.experiment("saddle", "lowrank", 3)
    assert events.time_grid_for(small) == events.time_grid(small.steps)
