"""The batched engine against independent references: the exact scalar map, gradient flow,
a naive per-run autograd loop, and the discrete balance identity."""

import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlncheck import theory
from dlncheck.config.data import init_weights, make_problem
from dlncheck.config.experiment import Experiment, Init, Teacher
from dlncheck.config.threads import cpu_threads
from dlncheck.engine import TrainingDiverged, train
from dlncheck.engine._batches import batch_indices

TEACHER = Teacher(5, 4, (3.0, 2.0, 1.0))


BALANCED = Init("balanced", 0.3)


def experiment(depth=3, init=BALANCED, lr=0.01, steps=300, S=2, **kw):
    return Experiment(
        TEACHER,
        depth,
        kw.pop("width", 6),
        init,
        lr=lr,
        steps=steps,
        batch_size=kw.pop("batch_size", 8),
        n_samples=kw.pop("n_samples", 40),
        sgd_runs=S,
        **kw,
    )


def modes(traj, run=0):
    """u_alpha = U_alpha^T W V_alpha of the end-to-end map at every checkpoint: (K, n_modes)."""
    W = functools.reduce(torch.matmul, [w[run] for w in traj.weights[::-1]])
    t = traj.teacher
    m = len(t.s)
    return torch.einsum("ia,kij,ja->ka", t.U[:, :m], W, t.V[:, :m])


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_aligned_gd_equals_exact_scalar_map(depth):
    scale, lr, steps = 0.2, 0.02, 1500
    exp = experiment(depth, Init("aligned", scale), lr=lr, steps=steps, S=0)
    traj = train(exp, checkpoints=list(range(0, steps + 1, 50)))
    u_map = theory.discrete_gd_modes(TEACHER.s, scale, lr, steps, depth)[:, ::50].T
    u_gd = modes(traj)
    assert u_map[-1, 0] > 0.99 * 3.0, "the top mode must be learned within the run for the test to bite"
    rel = ((u_gd - u_map).abs() / u_map.abs().clamp_min(scale**depth)).max()
    assert rel < 1e-10, f"aligned GD deviates from the scalar map by {rel:.2e} (relative)"


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_aligned_gd_tracks_gradient_flow_within_euler_error(depth):
    """GD - flow = lr e(t) + O(lr^2) with e from backward error analysis (theory.euler_error):
    after subtracting the predicted first-order error, at most 5% of it may remain."""
    scale, lr, steps = 0.2, 0.002, 8000
    exp = experiment(depth, Init("aligned", scale), lr=lr, steps=steps, S=0)
    grid = list(range(0, steps + 1, 200))
    u_gd = modes(train(exp, checkpoints=grid)).T[:3]
    t = torch.tensor(grid, dtype=torch.float64) * lr
    s = TEACHER.s[:3]
    u_flow = theory.mode_trajectory(s, scale**depth, t, depth)
    predicted = theory.euler_error(s, scale**depth, t, depth, lr)
    gap = (u_gd - u_flow).abs().max()
    assert gap > 0, "GD and flow coincide: the comparison is vacuous"
    residual = (u_gd - u_flow - predicted).abs().max()
    assert residual <= 0.05 * predicted.abs().max(), (
        f"GD - flow = {gap:.3e}, not explained by the first-order Euler error "
        f"{predicted.abs().max():.3e} (residual {residual:.3e})"
    )


def naive_run(exp, run, steps):
    """Reference: bias-free nn.Linear layers, autograd, torch.optim.SGD, the engine's data order."""
    problem = make_problem(exp)
    X, Y = problem.X.T, problem.Y.T
    layers = [torch.nn.Linear(w.shape[1], w.shape[0], bias=False).double() for w in init_weights(exp)]
    with torch.no_grad():
        for layer, w in zip(layers, init_weights(exp)):
            layer.weight.copy_(w)
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(net.parameters(), lr=exp.lr)
    order = batch_indices(exp, run, steps) if run else None
    losses, weights = [], []
    for k in range(steps + 1):
        with torch.no_grad():
            losses.append(0.5 * (net(X) - Y).pow(2).sum(1).mean())
        weights.append([l.weight.detach().clone() for l in layers])
        if k == steps:
            break
        xb, yb = (X, Y) if run == 0 else (X[order[k]], Y[order[k]])
        opt.zero_grad()
        (0.5 * (net(xb) - yb).pow(2).sum(1).mean()).backward()
        opt.step()
    return torch.stack(losses), weights


@pytest.mark.parametrize(
    "run, noise", [(0, 0.0), (2, 0.0), (0, 0.3), (3, 0.3)], ids=["GD", "SGD", "GD-label-noise", "SGD-label-noise"]
)
def test_batched_engine_equals_naive_autograd(run, noise):
    steps = 300
    exp = experiment(3, Init("gaussian", 0.4), lr=0.05, steps=steps, S=3, label_noise=noise)
    traj = train(exp, checkpoints=[0, 100, steps])
    with cpu_threads("cpu"):  # the reference is as slow as it is exact when threaded on tiny matrices
        losses, weights = naive_run(exp, run, steps)
    assert losses[-1] < 0.5 * losses[0], "the reference must actually train"
    # the loss is a difference of O(1) terms: compare to 1e-10 of its initial scale
    torch.testing.assert_close(traj.loss[run], losses, rtol=1e-10, atol=1e-10 * float(losses[0]))
    for k, step in enumerate(traj.checkpoint_steps.tolist()):
        for w_engine, w_ref in zip(traj.weights, weights[step]):
            torch.testing.assert_close(w_engine[run, k], w_ref, rtol=1e-10, atol=1e-12)


def test_sgd_runs_differ_and_are_deterministic():
    exp = experiment(S=3)
    a, b = train(exp), train(exp)
    assert torch.equal(a.loss, b.loss)
    assert not torch.equal(a.loss[1], a.loss[2])


def test_balance_identity():
    """D_l(k+1) - D_l(k) = lr^2 (G_{l+1}^T G_{l+1} - G_l G_l^T), D_l = W_{l+1}^T W_{l+1} - W_l W_l^T."""
    exp = experiment(3, Init("gaussian", 0.5), lr=0.1, steps=60, S=0)
    traj = train(exp, checkpoints=list(range(61)))
    problem = make_problem(exp)
    for k in (0, 5, 10):
        W = [w[0, k].clone().requires_grad_() for w in traj.weights]
        problem.loss(W[2] @ W[1] @ W[0]).backward()
        G = [w.grad for w in W]
        for l in range(2):
            D = [
                traj.weights[l + 1][0, j].T @ traj.weights[l + 1][0, j]
                - traj.weights[l][0, j] @ traj.weights[l][0, j].T
                for j in (k, k + 1)
            ]
            predicted = exp.lr**2 * (G[l + 1].T @ G[l + 1] - G[l] @ G[l].T)
            assert predicted.abs().max() > 1e-4, "vacuous: the layer gradients vanish"
            torch.testing.assert_close(D[1] - D[0], predicted, rtol=1e-7, atol=1e-13)


def test_divergence_names_run_step_and_lr():
    exp = experiment(2, Init("gaussian", 1.0), lr=5.0, steps=200, S=1)
    with pytest.raises(TrainingDiverged, match=r"run \d+ \((GD|SGD)\) diverged at step \d+ with lr=5") as info:
        train(exp)
    assert info.value.lr == 5.0 and info.value.step > 0


def test_trajectory_fields_and_frame():
    exp = experiment(S=2, steps=50)
    traj = train(exp, checkpoints=4, loss_every=7)
    assert traj.steps.tolist() == [0, 7, 14, 21, 28, 35, 42, 49, 50]
    torch.testing.assert_close(traj.times, 0.01 * traj.steps.double())
    assert traj.loss.shape == (3, 9)
    assert traj.checkpoint_steps[0] == 0 and traj.checkpoint_steps[-1] == 50
    assert [tuple(w.shape) for w in traj.weights] == [
        (3, len(traj.checkpoint_steps), 6, 4),
        (3, len(traj.checkpoint_steps), 6, 6),
        (3, len(traj.checkpoint_steps), 5, 6),
    ]
    for w0, w in zip(traj.initial_weights, traj.weights):
        assert torch.equal(w[:, 0], w0.expand_as(w[:, 0]))
    frame = traj.to_frame()
    assert list(frame.columns) == ["run", "method", "step", "time", "loss"]
    assert len(frame) == 27 and set(frame.method) == {"GD", "SGD"}


def test_per_run_checkpoints_and_float32():
    exp = experiment(S=2, steps=40, dtype="float32")
    table = torch.tensor([[0, 10], [5, -1], [40, 20]])
    traj = train(exp, checkpoints=table)
    full = train(exp, checkpoints=list(range(41)))
    assert traj.loss.dtype == torch.float32
    for r, row in enumerate(table.tolist()):
        for k, step in enumerate(row):
            if step < 0:
                assert torch.isnan(traj.weights[0][r, k]).all()
            else:
                assert torch.equal(traj.weights[0][r, k], full.weights[0][r, step])


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(checkpoints=[0, 999]), "steps=300"),
        (dict(loss_every=0), "loss_every"),
    ],
)
def test_train_argument_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        train(experiment(), **bad)


@given(depth=st.integers(1, 4), width=st.integers(2, 7), seed=st.integers(0, 10_000), run=st.integers(0, 2))
@settings(max_examples=8, deadline=None)
def test_engine_equals_naive_for_random_shapes(depth, width, seed, run):
    steps = 20
    exp = Experiment(
        Teacher(3, 5, (2.0, 1.0), seed=seed),
        depth,
        width,
        Init("gaussian", 0.4, seed=seed),
        lr=0.05,
        steps=steps,
        batch_size=4,
        n_samples=12,
        sgd_runs=2,
        seed=seed,
    )
    traj = train(exp, checkpoints=[steps])
    with cpu_threads("cpu"):
        losses, weights = naive_run(exp, run, steps)
    torch.testing.assert_close(traj.loss[run], losses, rtol=1e-10, atol=1e-10 * float(losses[0]))
    for w_engine, w_ref in zip(traj.weights, weights[steps]):
        torch.testing.assert_close(w_engine[run, 0], w_ref, rtol=1e-10, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    widths=st.lists(st.integers(1, 6), min_size=2, max_size=5),
    seed=st.integers(0, 2**16),
    bad=st.sampled_from([float("nan"), float("inf"), -float("inf")]),
    where=st.integers(0, 10**6),
)
def test_a_non_finite_weight_makes_the_loss_non_finite(widths, seed, bad, where):
    """Why the engine checks only the loss for divergence: one NaN or inf entry in any layer
    (even beside zeros) makes ||W_L ... W_1 - Syx||_F non-finite."""
    g = torch.Generator().manual_seed(seed)
    W = [torch.randn(b, a, generator=g, dtype=torch.float64) for a, b in zip(widths[:-1], widths[1:])]
    layer = where % len(W)
    W[layer].view(-1)[where % W[layer].numel()] = bad
    if len(W) > 1:
        W[(layer + 1) % len(W)].zero_()  # a zero layer next to it does not hide it
    product = torch.linalg.multi_dot(W[::-1]) if len(W) > 1 else W[0]
    assert not torch.isfinite(torch.linalg.vector_norm(product - 1.0))
