"""dlncheck.measure.gauge: gauge alignment by alternating Procrustes against SciPy and exact gauge copies."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from nets import gauge_pair, random_net
from scipy.linalg import expm, orthogonal_procrustes

from dlncheck import spectra
from dlncheck.measure import compare, gauge


@pytest.mark.parametrize("dims", [[4, 3, 2], [5, 4, 6, 3], [3, 3, 3, 3, 3], [2, 5, 4, 6]])
def test_pure_gauge_pair_aligns_to_zero_with_identical_function(dims):
    """Widths that never grow from the input ([5, 4, 6, 3] hidden 4) or from the output side
    ([2, 5, 4, 6] hidden 5, 4) make the gauge identifiable from one side: exact recovery."""
    weights = gauge_pair(np.random.default_rng(9), dims)
    assert compare.theta_ratio(weights).item() > 0.3  # raw: far apart
    assert compare.function_distance(weights).item() < 1e-12  # same function
    aligned = gauge.gauge_align(weights)
    assert compare.theta_ratio(aligned.weights).item() < 1e-10  # gauge-aligned: same point
    assert compare.function_distance(aligned.weights).item() < 1e-12


def _gauge_fit(gd, sgd, Q):
    Qs = [np.eye(gd[0].shape[1])] + Q + [np.eye(gd[-1].shape[0])]
    return sum(np.linalg.norm(g - Qs[l + 1] @ s @ Qs[l].T) ** 2 for l, (g, s) in enumerate(zip(gd, sgd)))


def _reference_alternating_procrustes(gd, sgd, sweeps):
    """Per-network loop with scipy.linalg.orthogonal_procrustes, same three starts and
    schedule as gauge.gauge_align; returns (best fit, its Q) over the starts."""
    L = len(gd)

    def left(l, Q):
        return sgd[0] if l == 1 else sgd[l - 1] @ Q[l - 2].T

    def right(l, Q):
        return sgd[l] if l + 1 == L else Q[l] @ sgd[l]

    identity = [np.eye(W.shape[0]) for W in gd[:-1]]
    forward, backward = list(identity), list(identity)
    for l in range(1, L):  # min ||B_l^T Q_l^T - G_l^T||: R = Q_l^T
        forward[l - 1] = orthogonal_procrustes(left(l, forward).T, gd[l - 1].T)[0].T
    for l in range(L - 1, 0, -1):  # min ||Y Q_l^T - G_{l+1}||, Y = Q_{l+1} B_{l+1}
        backward[l - 1] = orthogonal_procrustes(right(l, backward), gd[l])[0].T
    results = []
    for Q in (identity, forward, backward):
        Q = list(Q)
        for _ in range(sweeps):  # ||Q [X, Y^T] - [G_l, G_{l+1}^T]||: R = Q^T
            for l in range(1, L):
                A = np.concatenate([left(l, Q), right(l, Q).T], axis=1)
                B = np.concatenate([gd[l - 1], gd[l].T], axis=1)
                Q[l - 1] = orthogonal_procrustes(A.T, B.T)[0].T
        results.append((_gauge_fit(gd, sgd, Q), Q))
    return sorted(results, key=lambda fq: fq[0])


@pytest.mark.parametrize("dims", [[4, 3, 3, 4], [5, 3, 2, 2, 4]])
def test_batched_procrustes_matches_scipy_loop(dims):
    """Hidden widths no larger than both neighbours: every Procrustes target is full rank,
    so its solution is unique and the batched torch path must reproduce SciPy exactly."""
    rng = np.random.default_rng(10)
    weights = random_net(rng, dims, runs=4, checkpoints=3)
    out = gauge.gauge_align(weights, max_sweeps=3, rtol=-1.0)  # exactly 3 sweeps
    assert out.sweeps == 3
    for run in range(3):
        for k in range(3):
            gd = [W[0, k].numpy() for W in weights]
            sgd = [W[run + 1, k].numpy() for W in weights]
            (fit, Q), (second, _) = _reference_alternating_procrustes(gd, sgd, 3)[:2]
            assert out.objective[run, k].item() == pytest.approx(fit, rel=1e-9)
            if second > fit * (1 + 1e-6):  # unique best start
                for q_ref, q in zip(Q, out.Q):
                    np.testing.assert_allclose(q[run, k].numpy(), q_ref, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1), dims=st.lists(st.integers(1, 5), min_size=2, max_size=5), noise=st.floats(0.0, 1.0)
)
def test_gauge_alignment_properties(seed, dims, noise):
    """Aligned <= raw; end-to-end map unchanged; Q orthogonal; reported objective is the
    distance of the aligned weights; a gauge-rotated copy whose hidden widths never grow
    from the input aligns to within the perturbation `noise`."""
    rng = np.random.default_rng(seed)
    pure = gauge_pair(rng, dims)
    weights = [torch.cat([W[:1], W[1:] + noise * torch.as_tensor(rng.standard_normal(W[1:].shape))]) for W in pure]
    out = gauge.gauge_align(weights)
    assert torch.all(out.objective <= out.objective_raw * (1 + 1e-12) + 1e-24)
    W_before, W_after = spectra.end_to_end(weights), spectra.end_to_end(out.weights)
    np.testing.assert_allclose(W_after.numpy(), W_before.numpy(), atol=1e-10)
    for q in out.Q:
        eye = np.eye(q.shape[-1])
        np.testing.assert_allclose((q.mT @ q).numpy(), np.broadcast_to(eye, q.shape), atol=1e-10)
    np.testing.assert_allclose(
        compare.theta_distance(out.weights).square().numpy(), out.objective.numpy(), rtol=1e-9, atol=1e-20
    )
    perturbation = sum(float((W[1:] - P[1:]).square().sum()) for W, P in zip(weights, pure))
    if all(dims[l] >= dims[l + 1] for l in range(len(dims) - 2)):  # forward-identifiable
        assert out.objective.item() <= perturbation * (1 + 1e-6) + 1e-20


def test_warm_started_path_finds_a_gauge_path_exactly_and_never_worse_than_identity():
    """A slowly rotating gauge copy along checkpoints (the hidden widths make it non-identifiable
    from either side for the cold starts): every checkpoint after the first is warm-started from
    the previous rotations and recovers the copy; aligned <= raw at every checkpoint."""
    rng = np.random.default_rng(3)
    dims, K = [3, 5, 5, 3], 4
    gd = [rng.standard_normal((K, dims[l + 1], dims[l])) for l in range(3)]
    Q0 = [np.linalg.qr(rng.standard_normal((d, d)))[0] for d in dims[1:-1]]
    A = [0.02 * (lambda a: a - a.T)(rng.standard_normal((d, d))) for d in dims[1:-1]]
    sgd = []
    for l in range(3):
        per_k = []
        for k in range(K):
            Q = [np.eye(dims[0])] + [q @ expm(k * a) for q, a in zip(Q0, A)] + [np.eye(dims[-1])]
            per_k.append(Q[l + 1] @ gd[l][k] @ Q[l].T)
        sgd.append(np.stack(per_k))
    weights = [torch.as_tensor(np.stack([g, s])) for g, s in zip(gd, sgd)]
    first = gauge.gauge_align([W[:, 0] for W in weights], max_sweeps=200, rtol=-1.0)
    start = first.Q
    for k in range(1, K):
        out = gauge.gauge_align([W[:, k] for W in weights], max_sweeps=200, rtol=-1.0, start=start)
        assert torch.all(out.objective <= out.objective_raw * (1 + 1e-12))
        if first.objective.item() < 1e-20:  # the cold start found the copy: so does the warm path
            assert out.objective.item() < 1e-16
        start = out.Q
    path = gauge.gauge_align_path(weights)
    assert len(path) == K and all(torch.all(p.objective <= p.objective_raw * (1 + 1e-12)) for p in path)


def test_warm_start_needs_one_rotation_per_hidden_layer():
    weights = random_net(np.random.default_rng(1), [3, 4, 3], runs=3)
    with pytest.raises(ValueError, match="start has 2 rotations"):
        gauge.gauge_align([W[:, 0] for W in weights], start=[torch.eye(4)] * 2)


def test_every_batch_gradient_satisfies_the_gauge_pair_identity():
    """W_l g_l^T = g_{l+1}^T W_{l+1} for the gradient of any loss of the product (here one
    minibatch's squared loss): the identity behind 'no step moves along the gauge orbit at first
    order' (theory.tolerances.split_distance). Autograd, float64."""
    rng = np.random.default_rng(4)
    Ws = [
        torch.tensor(rng.standard_normal((d_out, d_in)), requires_grad=True) for d_in, d_out in ((3, 5), (5, 4), (4, 2))
    ]
    X, Y = torch.tensor(rng.standard_normal((3, 7))), torch.tensor(rng.standard_normal((2, 7)))
    loss = 0.5 * (Ws[2] @ Ws[1] @ Ws[0] @ X - Y).square().sum() / 7
    grads = torch.autograd.grad(loss, Ws)
    for l in range(2):
        np.testing.assert_allclose(
            (Ws[l] @ grads[l].T).detach().numpy(), (grads[l + 1].T @ Ws[l + 1]).detach().numpy(), atol=1e-12
        )
