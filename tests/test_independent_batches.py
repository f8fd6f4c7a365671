"""Experiment(batches="independent"): i.i.d. minibatches, checked against a NumPy SGD reference on
every engine path, with the sampler's own law and the field's validation and cache key."""

import dataclasses

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from dlncheck import InvalidArgument
from dlncheck.config.data import init_weights, make_problem
from dlncheck.config.experiment import Experiment, Init, Teacher
from dlncheck.engine import train
from dlncheck.engine._batches import batch_indices

TEACHER = Teacher(5, 4, (3.0, 2.0, 1.0))


def experiment(batches="independent", **kw):
    spec = dict(depth=3, width=6, init=Init("gaussian", 0.4), lr=0.05, steps=200, batch_size=8, n_samples=40)
    return Experiment(TEACHER, sgd_runs=3, batches=batches, label_noise=kw.pop("label_noise", 0.0), **spec | kw)


def numpy_sgd(exp: Experiment, run: int, steps: int) -> list[list[np.ndarray]]:
    """Reference: plain NumPy SGD on 1/(2B) sum_b ||W_L...W_1 x_b - y_b||^2, the engine's index draws."""
    problem = make_problem(exp)
    X, Y = problem.X.numpy(), problem.Y.numpy()
    W = [w.numpy().copy() for w in init_weights(exp)]
    order = batch_indices(exp, run, steps).numpy()
    out = [[w.copy() for w in W]]
    for k in range(steps):
        xb, yb = X[:, order[k]], Y[:, order[k]]
        acts = [xb]
        for w in W:
            acts.append(w @ acts[-1])
        delta = (acts[-1] - yb) / xb.shape[1]
        grads = [None] * len(W)
        for l in reversed(range(len(W))):
            grads[l] = delta @ acts[l].T
            delta = W[l].T @ delta
        W = [w - exp.lr * g for w, g in zip(W, grads)]
        out.append([w.copy() for w in W])
    return out


@pytest.mark.parametrize("backend", ["torch", "fused", "blas", "fused-per-sample", "blas-per-sample"])
@pytest.mark.parametrize("noise", [0.0, 0.3], ids=["clean", "label-noise"])
def test_engine_with_independent_batches_equals_numpy_sgd(backend, noise):
    exp = experiment(label_noise=noise)
    traj = train(exp, checkpoints=[0, 77, exp.steps], backend=backend)
    for run in (1, 3):
        ref = numpy_sgd(exp, run, exp.steps)
        for k, step in enumerate(traj.checkpoint_steps.tolist()):
            for w_engine, w_ref in zip(traj.weights, ref[step]):
                np.testing.assert_allclose(w_engine[run, k].numpy(), w_ref, rtol=1e-10, atol=1e-12)


def test_independent_batches_are_uniform_subsets_not_epochs():
    exp = experiment(n_samples=12, batch_size=4, steps=3000)
    idx = batch_indices(exp, 1, exp.steps).numpy()  # (steps, B)
    assert all(len(set(row)) == 4 for row in idx), "a batch is drawn without replacement"
    counts = np.bincount(idx.ravel(), minlength=12)
    assert chisquare(counts).pvalue > 1e-3, f"every sample equally likely: counts {counts}"
    # reshuffling covers each sample exactly once per epoch (m = 3 steps); independent draws do not
    per_epoch = idx[: (len(idx) // 3) * 3].reshape(-1, 12)
    assert not all(len(set(e)) == 12 for e in per_epoch)
    shuffled = batch_indices(dataclasses.replace(exp, batches="reshuffle"), 1, exp.steps).numpy()
    assert all(len(set(e)) == 12 for e in shuffled.reshape(-1, 12))
    # pairs of samples co-occur at the rate of a uniform B-subset: B (B - 1) / (n (n - 1)) per pair and step
    same = (idx[:, :, None] == 0).any(1) & (idx[:, :, None] == 1).any(1)
    rate, expected = same.mean(), 4 * 3 / (12 * 11)
    assert abs(rate - expected) < 4 * np.sqrt(expected / len(idx))


def test_batches_field_is_validated_and_keyed():
    with pytest.raises(
        InvalidArgument, match=r"batches='iid' is invalid: choose one of \('reshuffle', 'independent'\)"
    ):
        experiment(batches="iid")
    shuffled, independent = experiment("reshuffle"), experiment("independent")
    assert "batches" not in shuffled.to_dict(), "the default leaves existing cache keys unchanged"
    assert shuffled.key() != independent.key()
    assert Experiment.from_dict(independent.to_dict()).key() == independent.key()
    assert Experiment.from_dict(shuffled.to_dict()).batches == "reshuffle"
    a, b = train(shuffled), train(independent)
    assert torch.equal(a.loss[0], b.loss[0]), "GD does not depend on how SGD draws its batches"
    assert not torch.equal(a.loss[1], b.loss[1])
