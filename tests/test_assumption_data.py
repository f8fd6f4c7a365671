"""Data and inits beyond the theory's assumptions (issue #29): anisotropic inputs aligned with the
teacher or rotated away from it, label noise on top, unbalanced inits; validation, cache keys and
the engine's exactness against an independent NumPy loop over the raw samples."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from dlncheck.config.data import digits_teacher, imbalance, init_weights, input_spectrum, make_problem
from dlncheck.config.experiment import Experiment, Init, Teacher
from dlncheck.config.validation import InvalidArgument
from dlncheck.engine import train
from dlncheck.engine._batches import batch_indices

TEACHER = Teacher(5, 4, (3.0, 2.0, 1.0))


def experiment(**kw):
    spec = dict(depth=3, width=6, init=Init("gaussian", 0.4), lr=0.05, steps=200, batch_size=8, n_samples=40)
    return Experiment(TEACHER, sgd_runs=3, **spec | kw)


def numpy_run(exp, run, steps):
    """Reference: per-sample gradients of 1/(2B) sum ||W_L...W_1 x - y||^2 in NumPy, the engine's
    batch order; returns the full-data loss at every step and the weights at the end."""
    problem = make_problem(exp)
    X, Y = problem.X.numpy(), problem.Y.numpy()
    W = [w.numpy().copy() for w in init_weights(exp)]
    order = batch_indices(exp, run, steps).numpy() if run else None
    losses = []
    for k in range(steps + 1):
        losses.append(0.5 * np.mean(np.sum((np.linalg.multi_dot(W[::-1] + [X]) - Y) ** 2, axis=0)))
        if k == steps:
            break
        xb, yb = (X, Y) if run == 0 else (X[:, order[k]], Y[:, order[k]])
        acts = [xb]
        for w in W:
            acts.append(w @ acts[-1])
        delta = (acts[-1] - yb) / xb.shape[1]  # dLoss/d(output), per sample
        grads = []
        for l in reversed(range(len(W))):
            grads.append(delta @ acts[l].T)
            delta = W[l].T @ delta
        W = [w - exp.lr * g for w, g in zip(W, grads[::-1])]
    return np.array(losses), W


@pytest.mark.parametrize("basis", ["teacher", "random"])
def test_inputs_have_the_stated_spectrum_and_basis(basis):
    exp = experiment(input_condition=100.0, input_basis=basis)
    p = make_problem(exp)
    Sxx = (p.X @ p.X.T / exp.n_samples).numpy()
    lam, Q = input_spectrum(exp)
    np.testing.assert_allclose(np.linalg.eigvalsh(Sxx)[::-1], lam.numpy(), rtol=1e-12)
    assert math.isclose(lam[0] / lam[-1], 100.0, rel_tol=1e-12)
    M = TEACHER.M.numpy()
    commutator = np.linalg.norm(Sxx @ M.T @ M - M.T @ M @ Sxx)
    if basis == "teacher":
        assert commutator < 1e-12  # Sxx and the teacher's right Gram matrix are diagonal in V
    else:
        assert commutator > 0.1
    np.testing.assert_allclose(p.least_squares.numpy(), M, atol=1e-12)  # noise-free: T = M
    np.testing.assert_allclose(p.loss(p.least_squares).item(), 0.0, atol=1e-12)


@pytest.mark.parametrize(
    "run, options",
    [
        (0, dict(input_condition=10.0)),
        (2, dict(input_condition=10.0)),
        (0, dict(input_condition=100.0, input_basis="random")),
        (3, dict(input_condition=100.0, input_basis="random")),
        (0, dict(input_condition=10.0, input_basis="random", label_noise=0.3)),
        (1, dict(input_condition=10.0, input_basis="random", label_noise=0.3)),
        (2, dict(init=Init("gaussian", 0.4, layer_scales=imbalance(10.0, 3)))),
    ],
    ids=["GD-aligned", "SGD-aligned", "GD-rotated", "SGD-rotated", "GD-noise", "SGD-noise", "SGD-unbalanced"],
)
def test_engine_equals_numpy_reference_on_broken_assumptions(run, options):
    steps = 200
    exp = experiment(steps=steps, **options)
    traj = train(exp, checkpoints=[0, steps])
    losses, W = numpy_run(exp, run, steps)
    assert losses[-1] < 0.5 * losses[0], "the reference must actually train"
    np.testing.assert_allclose(traj.loss[run].numpy(), losses, rtol=1e-10, atol=1e-10 * losses[0])
    for w_engine, w_ref in zip(traj.weights, W):
        np.testing.assert_allclose(w_engine[run, -1].numpy(), w_ref, rtol=1e-10, atol=1e-12)


def digits_experiment(dataset, **kw):
    spec = dict(init=Init("gaussian", 0.2), lr=0.3, steps=150, batch_size=10, n_samples=1797, sgd_runs=2)
    return Experiment(digits_teacher(), 2, 8, dataset=dataset, **spec | kw)


@pytest.mark.parametrize("run", [0, 2])
@pytest.mark.parametrize("dataset", ["digits", "digits-whitened"])
def test_engine_equals_numpy_reference_on_digits(dataset, run):
    exp = digits_experiment(dataset)
    p = make_problem(exp)
    Sxx = (p.X @ p.X.T / exp.n_samples).numpy()
    np.testing.assert_allclose(np.linalg.eigvalsh(Sxx)[-1], 1.0, rtol=1e-12)
    assert exp.whitened == (dataset == "digits-whitened") and exp.noisy_labels
    np.testing.assert_allclose(p.Y.sum(1).numpy(), 0.0, atol=1e-9)  # centred one-hot labels
    traj = train(exp, checkpoints=[0, exp.steps])
    losses, W = numpy_run(exp, run, exp.steps)
    assert losses[-1] < losses[0] - 0.5 * (losses[0] - p.loss_offset), "the reference must actually train"
    np.testing.assert_allclose(traj.loss[run].numpy(), losses, rtol=1e-10, atol=1e-10 * losses[0])
    for w_engine, w_ref in zip(traj.weights, W):
        np.testing.assert_allclose(w_engine[run, -1].numpy(), w_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: Experiment(TEACHER, 2, 4, Init("gaussian", 0.1), 0.1, 10, 10, 1797, 1, dataset="digits"), "teacher"),
        (lambda: digits_experiment("digits", n_samples=1000), "n_samples"),
        (lambda: digits_experiment("digits", init=Init("aligned", 0.1)), "Init.kind"),
        (lambda: digits_experiment("digits", input_condition=10.0), "input_condition"),
        (lambda: digits_experiment("mnist"), "dataset"),
    ],
)
def test_digits_options_are_validated(build, field):
    with pytest.raises(InvalidArgument, match=f"^{field}="):
        build()


def test_anisotropic_inputs_refuse_the_whitened_backends():
    exp = experiment(input_condition=10.0)
    with pytest.raises(ValueError, match="assumes whitened inputs"):
        train(exp, backend="blas")
    torch.testing.assert_close(train(exp, backend="torch").loss, train(exp).loss, rtol=0, atol=0)


@pytest.mark.parametrize(
    "options, field",
    [
        (dict(input_condition=0.5), "input_condition"),
        (dict(input_condition=float("nan")), "input_condition"),
        (dict(input_condition="10"), "input_condition"),
        (dict(input_condition=10.0, input_basis="rotated"), "input_basis"),
        (dict(input_basis="random"), "input_basis"),
        (dict(init=Init("gaussian", 0.4, layer_scales=(2.0, 0.5))), "Init.layer_scales"),
    ],
)
def test_options_are_validated(options, field):
    with pytest.raises(InvalidArgument, match=f"^{field}="):
        experiment(**options)


@pytest.mark.parametrize("scales", [(2.0, 1.0, 1.0), (2.0, -0.5, -1.0), (1.0, 0.0, 1.0), "abc"])
def test_layer_scales_are_validated(scales):
    with pytest.raises(InvalidArgument, match="^Init.layer_scales"):
        Init("gaussian", 0.4, layer_scales=scales)


@pytest.mark.parametrize("factor", [1.0, 3.0, 10.0])
def test_unbalanced_init_keeps_the_product_and_scales_the_layers(factor):
    base = experiment(init=Init("balanced", 0.5))
    unbalanced = experiment(init=Init("balanced", 0.5, layer_scales=imbalance(factor, 3)))
    W0, W1 = init_weights(base), init_weights(unbalanced)
    torch.testing.assert_close(W1[2] @ W1[1] @ W1[0], W0[2] @ W0[1] @ W0[0], rtol=1e-12, atol=1e-14)
    norms = [float(torch.linalg.matrix_norm(w, 2)) for w in W1]
    assert math.isclose(norms[0] / norms[-1], factor, rel_tol=1e-12)
    assert math.isclose(math.prod(imbalance(factor, 4)), 1.0, rel_tol=1e-12)


def test_cache_key_includes_the_options_and_keeps_old_keys():
    base = experiment()
    assert "input_condition" not in base.to_dict() and "layer_scales" not in base.to_dict()["init"]
    variants = [
        dataclasses.replace(base, input_condition=10.0),
        dataclasses.replace(base, input_condition=100.0),
        dataclasses.replace(base, input_condition=10.0, input_basis="random"),
        dataclasses.replace(base, init=Init("gaussian", 0.4, layer_scales=imbalance(3.0, 3))),
    ]
    digits = [digits_experiment("digits"), digits_experiment("digits-whitened")]
    assert digits[0].key() != digits[1].key()
    variants += digits
    keys = {e.key() for e in [base, *variants]}
    assert len(keys) == 1 + len(variants)
    for e in [base, *variants]:
        assert Experiment.from_dict(e.to_dict()).key() == e.key()
