"""dlncheck.theory.trap against independent references: NumPy determinants, SciPy-integrated
balanced gradient flow, exact enumeration of batches, matrix exponentials."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.integrate import solve_ivp
from scipy.stats import ortho_group

from dlncheck.theory import ESCAPE_FRACTION, trap

S = np.array([3.0, 1.5, 0.8])


def _teacher(seed: int, s=S):
    U, V = ortho_group.rvs(len(s), random_state=seed), ortho_group.rvs(len(s), random_state=seed + 1)
    return U, V, U @ np.diag(s) @ V.T


def _balanced(d: int, L: int, scale: float, seed: int, flip: bool) -> list[np.ndarray]:
    """W_l = scale Q_l Q_{l-1}^T (square, exactly balanced); flip negates the last frame's first column."""
    Q = [ortho_group.rvs(d, random_state=seed + 10 + l) for l in range(L + 1)]
    if flip:
        Q[-1][:, 0] *= -1
    return [scale * Q[l + 1] @ Q[l].T for l in range(L)]


def _flow(weights, M, t_end, n_eval=200):
    """Layer-wise gradient flow of 0.5 ||W_L..W_1 - M||^2 (dW_l/dt = -A_l^T G B_l^T), DOP853."""
    shapes = [w.shape for w in weights]
    sizes = np.cumsum([0] + [int(np.prod(s)) for s in shapes])

    def unpack(y):
        return [y[sizes[l] : sizes[l + 1]].reshape(shapes[l]) for l in range(len(shapes))]

    def rhs(_, y):
        W = unpack(y)
        prods = [np.eye(shapes[0][1])]
        for w in W:
            prods.append(w @ prods[-1])
        G = prods[-1] - M
        grads, A = [], np.eye(shapes[-1][0])
        for l in reversed(range(len(W))):
            grads.append(-(A.T @ G @ prods[l].T))
            A = A @ W[l]
        return np.concatenate([g.ravel() for g in reversed(grads)])

    sol = solve_ivp(
        rhs,
        (0, t_end),
        np.concatenate([w.ravel() for w in weights]),
        method="DOP853",
        rtol=1e-11,
        atol=1e-14,
        t_eval=np.linspace(0, t_end, n_eval),
    )
    return sol.t, [unpack(y) for y in sol.y.T]


@given(st.integers(0, 10_000), st.integers(1, 6))
def test_det_sign_matches_numpy(seed, d):
    A = np.random.default_rng(seed).standard_normal((3, d, d))
    assert trap.det_sign(torch.from_numpy(A)).tolist() == np.sign(np.linalg.det(A)).tolist()


def test_trap_sign_needs_square_maps():
    with pytest.raises(ValueError, match="square"):
        trap.trap_sign(torch.zeros(3, 3), torch.zeros(3, 4))


@pytest.mark.parametrize("L", [2, 3])
def test_balanced_flow_keeps_det_sign_and_ends_on_the_plateau(L):
    U, V, M = _teacher(0)
    weights = _balanced(3, L, 0.1, seed=L, flip=False)
    W0 = np.linalg.multi_dot(weights[::-1])
    if np.sign(np.linalg.det(W0)) == np.sign(np.linalg.det(M)):
        weights = _balanced(3, L, 0.1, seed=L, flip=True)
        W0 = np.linalg.multi_dot(weights[::-1])
    assert bool(trap.predicts_trap(torch.from_numpy(W0), torch.from_numpy(M)))
    t, path = _flow(weights, M, t_end=15.0 if L == 2 else 200.0)  # before L = 2 regrows from the integrator floor
    W = np.array([np.linalg.multi_dot(p[::-1]) for p in path])
    loss = 0.5 * ((W - M) ** 2).sum((1, 2))
    assert (np.sign(np.linalg.det(W)) == np.sign(np.linalg.det(W0))).all()
    assert loss.min() >= trap.trap_plateau(S) - 1e-9  # Eckart-Young floor
    assert loss[-1] == pytest.approx(trap.trap_plateau(S), rel=1e-4)  # smallest mode unlearned
    imbalance = max(np.abs(p[l + 1].T @ p[l + 1] - p[l] @ p[l].T).max() for p in path for l in range(L - 1))
    assert imbalance < 1e-8  # Arora et al. 2018


def test_agreeing_signs_converge_under_the_same_flow():
    _, _, M = _teacher(0)
    weights = _balanced(3, 2, 0.1, seed=2, flip=False)
    W0 = weights[1] @ weights[0]
    if np.sign(np.linalg.det(W0)) != np.sign(np.linalg.det(M)):
        weights = _balanced(3, 2, 0.1, seed=2, flip=True)
    _, path = _flow(weights, M, t_end=60.0)
    assert 0.5 * ((path[-1][1] @ path[-1][0] - M) ** 2).sum() < trap.converged_loss(S, 2)


@given(st.integers(0, 10_000))
def test_plateau_is_the_wrong_sign_infimum(seed):
    """Random wrong-sign matrices never beat P; M minus its smallest mode attains it."""
    U, V, M = _teacher(seed % 50)
    rng = np.random.default_rng(seed)
    W = M + rng.standard_normal((3, 3)) * rng.uniform(0.01, 3)
    if np.sign(np.linalg.det(W)) == np.sign(np.linalg.det(M)):
        W[:, 0] *= -1 if np.sign(np.linalg.det(W)) != 0 else 1
    if np.linalg.det(W) * np.linalg.det(M) <= 0:
        assert 0.5 * ((W - M) ** 2).sum() >= trap.trap_plateau(S) - 1e-12
    Wstar = M - S[-1] * np.outer(U[:, -1], V[:, -1])
    assert 0.5 * ((Wstar - M) ** 2).sum() == pytest.approx(trap.trap_plateau(S))


def test_plateau_band_edges():
    low, high = trap.plateau_band([4.0, 2.0, 1.0, 0.5])
    assert low == pytest.approx(0.125 * (1 - ESCAPE_FRACTION) ** 2) == pytest.approx(0.0625)
    assert high == pytest.approx(0.5 * (0.125 + 0.625))


@pytest.mark.parametrize("L", [2, 3, 4])
def test_end_to_end_flow_matches_the_layer_flow(L):
    """dW/dt = sum_l A_l (dW_l/dt) B_l of the layer-wise gradient flow equals Arora et al.'s formula
    on a balanced point (A_l = W_L..W_{l+1}, B_l = W_{l-1}..W_1)."""
    _, _, M = _teacher(4)
    Q = [ortho_group.rvs(3, random_state=20 + l) for l in range(L + 1)]
    weights = [Q[l + 1] @ np.diag([1.3, 0.7, 0.2]) @ Q[l].T for l in range(L)]  # balanced, anisotropic

    def prod(ws):
        out = np.eye(3)
        for w in ws:
            out = w @ out
        return out

    W = prod(weights)
    G = W - M
    dW = np.zeros_like(W)
    for l in range(L):
        A, B = prod(weights[l + 1 :]), prod(weights[:l])
        dW += A @ (-(A.T @ G @ B.T)) @ B
    assert np.allclose(trap.balanced_flow_rhs(W, M, L), dW, atol=1e-12)


def test_flow_entry_time_matches_saxe_closed_form():
    """Aligned init W_0 = c U V^T: modes follow Saxe's solution; the loss crosses a level when
    theory.aligned_loss does."""
    from dlncheck import theory

    U, V, M = _teacher(5)
    c = 1e-6
    level = 0.5 * (S[-1] ** 2) * 0.9
    t = trap.flow_entry_time(torch.from_numpy(c * U @ V.T), torch.from_numpy(M), 2, level, 200.0)
    assert float(theory.aligned_loss(S, c, [t], 2)[0]) == pytest.approx(level, rel=1e-5)


@pytest.mark.parametrize("L", [2, 3, 4, 6])
@pytest.mark.parametrize("s_min", [0.3, 1.0, 2.5])
def test_settling_margin_takes_the_gap_from_the_escape_down_by_settle_efolds(L, s_min):
    """Integrating the balanced mode flow du/dt = L u^{2-2/L} (s - u) (SciPy, from the escape u = f s) for
    settling_margin leaves the gap at (1 - f) s e^{-SETTLE}; the linearised count SETTLE is short."""
    margin = trap.settling_margin(s_min, L)

    def rhs(_, u):
        return L * np.abs(u) ** (2 - 2 / L) * (s_min - u)

    sol = solve_ivp(rhs, (0.0, margin), [ESCAPE_FRACTION * s_min], method="LSODA", rtol=1e-11, atol=1e-15)
    gap = s_min - sol.y[0, -1]
    assert gap == pytest.approx((1 - ESCAPE_FRACTION) * s_min * math.exp(-trap.SETTLE), rel=1e-6)
    assert trap.settling_efolds(L) > trap.SETTLE


def test_settling_efolds_closed_form_at_depth_two():
    """I_2 = ln((e^{w0 + SETTLE} - 1) / (e^{w0} - 1)), w0 = -ln(1 - f)."""
    w0 = -math.log(1 - ESCAPE_FRACTION)
    exact = math.log((math.exp(w0 + trap.SETTLE) - 1) / (math.exp(w0) - 1))
    assert trap.settling_efolds(2) == pytest.approx(exact, rel=1e-12)
    with pytest.raises(ValueError, match="depth=1"):
        trap.settling_efolds(1)


@pytest.mark.parametrize("n, B", [(6, 2), (7, 3), (5, 5)])
def test_sgd_temperature_is_the_batch_mean_variance(n, B):
    x = np.random.default_rng(n).standard_normal(n)
    means = [x[list(idx)].mean() for idx in itertools.combinations(range(n), B)]
    expected = np.var(means) / np.var(x) * 0.1
    assert trap.sgd_temperature(0.1, n, B) == pytest.approx(expected)


def test_escape_shift_is_the_small_seed_limit_of_the_escape_time():
    T1, T2 = 1e-3, 4e-4
    dt = trap.sgd_escape_time(0.5, 1e-12, T2) - trap.sgd_escape_time(0.5, 1e-12, T1)
    assert dt == pytest.approx(trap.escape_shift(0.5, T1, T2), rel=1e-6)


def test_float_trap_end_at_depth_two():
    s, eps = [4.0, 2.0, 1.0, 0.5], 2.0**-52
    f = ESCAPE_FRACTION
    u = eps * 4.0
    exact = math.log((f * 0.5 / u) * (0.5 - u) / (0.5 - f * 0.5)) / (2 * 0.5)
    assert trap.float_trap_end(s, 10.0, 2, eps) == pytest.approx(10.0 + exact)


def test_escape_times_first_crossing():
    loss = torch.tensor([[1.0, 0.6, 0.4, 0.6], [1.0, 1.0, 1.0, 1.0]])
    t = torch.tensor([0.0, 1.0, 2.0, 3.0])
    assert trap.escape_times(loss, t, 0.5).tolist() == [2.0, math.inf]


def test_crossing_bounds():
    assert trap.crossing_dip_bound([0.0, 1.0, 2.0], 1.25, 0.4) == pytest.approx(0.1)
    assert trap.dip_below_floor_probability(4e-4, 0.245) == pytest.approx(8e-4 / 0.245)
    assert trap.dip_below_floor_probability(1.0, 0.5) == 1.0


def test_first_sign_flip():
    signs = torch.tensor([[1.0, 1.0, -1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]])
    assert trap.first_sign_flip(signs).tolist() == [2, -1]


def test_trapped_init_needs_every_premise():
    """trapped_init: balanced up to roundoff, square full-rank teacher with a simple smallest value,
    det(W_0) det(M) < 0; each premise removed in turn makes it False."""
    from dlncheck.config.data import init_weights
    from dlncheck.config.experiment import Experiment, Init, Teacher

    def weights(teacher, kind, seed):
        exp = Experiment(
            teacher, 3, 4, Init(kind, 0.3, seed=seed), lr=0.01, steps=1, batch_size=4, n_samples=8, sgd_runs=0
        )
        return init_weights(exp)

    full = Teacher(4, 4, (3.0, 2.0, 1.0, 0.5))
    signs = {}
    for seed in range(12):
        w = weights(full, "balanced", seed)
        W0 = w[2] @ w[1] @ w[0]
        signs[seed] = int(trap.trap_sign(W0, full.M))
        assert trap.trapped_init(w, full.M) == (signs[seed] < 0)
    assert set(signs.values()) == {-1, 1}, "both signs occur among the seeds"
    negative = [s for s, v in signs.items() if v < 0][0]
    w = weights(full, "balanced", negative)
    assert not trap.trapped_init([w[0] * 1.01, *w[1:]], full.M), "an unbalanced init is not trapped"
    assert not trap.trapped_init(w, Teacher(4, 4, (3.0, 2.0, 1.0)).M), "a rank-deficient teacher has no trap"
    assert not trap.trapped_init(w, Teacher(4, 4, (3.0, 2.0, 1.0, 1.0)).M), "the smallest value must be simple"
    gaussian = [
        s for s in range(40) if trap.trap_sign(torch.linalg.multi_dot(weights(full, "gaussian", s)[::-1]), full.M) < 0
    ]
    assert gaussian and not trap.trapped_init(weights(full, "gaussian", gaussian[0]), full.M)
