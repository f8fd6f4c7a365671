"""dlncheck.measure.modes against direct NumPy computations and exact properties."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlncheck.measure import modes, stagewise

rng = np.random.default_rng(0)


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


def test_initial_mode_strength_l2_by_hand():
    g = np.random.default_rng(3)
    W1, W2 = g.standard_normal((4, 3)), g.standard_normal((5, 4))
    U, V = np.linalg.qr(g.standard_normal((5, 5)))[0], np.linalg.qr(g.standard_normal((3, 3)))[0]
    u0 = modes.initial_mode_strength(
        [torch.as_tensor(W1), torch.as_tensor(W2)], torch.as_tensor(U), torch.as_tensor(V), 2
    )
    for a in range(2):
        assert u0[a].item() == pytest.approx(np.linalg.norm(W2.T @ U[:, a]) * np.linalg.norm(W1 @ V[:, a]))


def test_rho_upper_bound_holds():
    g = np.random.default_rng(5)
    U, V = np.linalg.qr(g.standard_normal((4, 4)))[0], np.linalg.qr(g.standard_normal((4, 4)))[0]
    s = np.array([3.0, 2.0, 1.0, 0.0])
    M = U @ np.diag(s) @ V.T
    W = M + 0.05 * g.standard_normal((6, 4, 4))
    rho = modes.row_offdiag(
        modes.mode_coefficients(torch.as_tensor(W), torch.as_tensor(U), torch.as_tensor(V)), torch.as_tensor(s)
    )["rho"]
    bound = modes.rho_upper_bound(torch.as_tensor(W), torch.as_tensor(M), torch.as_tensor(s))
    assert torch.all(rho <= bound)
