"""The BLAS path (engine._per_sample) in both forms equals the reference PyTorch path to 1e-12
(float64) on every field, and backend="auto" takes the form and kernel the cost model names."""

import numpy as np
import pytest
import torch
from engine_experiments import experiment, random_shape_experiment
from hypothesis import given, settings
from hypothesis import strategies as st
from same import assert_same

from dlncheck import Ensemble, Experiment, Init, Teacher, TrainingDiverged, train
from dlncheck.config.data import init_weights, make_problem
from dlncheck.engine import _cost as cost
from dlncheck.engine import _fused as fused
from dlncheck.engine import _per_sample as per_sample
from dlncheck.engine import _train as engine
from dlncheck.engine._batches import BatchOrders, MomentTable
from dlncheck.engine._divergence import DIVERGENCE_WINDOW
from dlncheck.engine._torch_path import advance_torch

FORMS = ["blas", "blas-per-sample", "fused-per-sample"]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("noise", [0.0, 0.3], ids=["clean", "label-noise"])
@pytest.mark.parametrize("S", [0, 4], ids=["GD", "GD+SGD"])
def test_blas_path_equals_torch(form, noise, S):
    exp = experiment(S=S, label_noise=noise)
    a, b = (train(exp, backend=f, checkpoints=7, loss_every=3) for f in (form, "torch"))
    assert (b.loss[:, -1] < 0.5 * b.loss[:, 0]).all(), "the runs must train for the comparison to bite"
    assert_same(a, b)


@given(
    depth=st.integers(1, 5),
    widths=st.lists(st.integers(1, 13), min_size=4, max_size=4),
    wide=st.sampled_from([None, 40]),
    seed=st.integers(0, 1000),
    batch=st.integers(1, 12),
    loss_every=st.sampled_from([1, 7, 1000]),
)
@settings(max_examples=12, deadline=None)
def test_forms_equal_torch_for_random_shapes(depth, widths, wide, seed, batch, loss_every):
    """Rectangular and bottleneck widths (a hidden width of 1), and a wide layer (40)."""
    exp = random_shape_experiment(depth, widths, seed, batch, wide)
    reference = train(exp, backend="torch", checkpoints=[0, 17, 60], loss_every=loss_every)
    for form in FORMS:
        assert_same(train(exp, backend=form, checkpoints=[0, 17, 60], loss_every=loss_every), reference)


@pytest.mark.parametrize("form", FORMS)
def test_forms_equal_torch_for_an_lr_ensemble_in_small_chunks(form, monkeypatch):
    """Per-config lrs, per-run checkpoints, a config leaving early, and chunks of 2 rows that cut
    across runs (CHUNK_BYTES shrunk)."""
    monkeypatch.setattr(cost, "CHUNK_BYTES", 2 * 8 * (6 * 7 + 36 + 30))
    ens = Ensemble(
        experiment(steps=200, S=4, label_noise=0.2),
        [Init("gaussian", 0.4, seed=1), Init("balanced", 0.3, seed=2), Init("gaussian", 0.3, seed=3)],
        lrs=[0.05, 0.1, 0.02],
    )
    table = {0: torch.tensor([[0, 200], [3, -1], [150, 7], [-1, 199], [5, 6]]), 1: 5, 2: [0, 33, 200]}
    for a, b in zip(train(ens, checkpoints=table, backend=form), train(ens, checkpoints=table, backend="torch")):
        assert_same(a, b)


@pytest.mark.parametrize("form", FORMS)
def test_forms_float32_within_roundoff(form):
    exp = experiment(dtype="float32", steps=200)
    a, b = (train(exp, backend=f, checkpoints=4) for f in (form, "torch"))
    assert_same(a, b, rel=1e-12 * exp.roundoff_scale * 200)


@pytest.mark.parametrize("backend", ["blas-per-sample", "fused-per-sample"])
def test_per_sample_computes_the_chain_only_where_the_loss_is_kept(monkeypatch, backend):
    """loss_every=50 over 200 steps: the per-sample rows' chains are the recorded steps' (and one
    per segment), not one per step; the recorded losses are the reference's."""
    calls = []
    chain = per_sample.chain_norm
    monkeypatch.setattr(per_sample, "chain_norm", lambda W, S: calls.append(1) or chain(W, S))
    exp = experiment(steps=200)
    a = train(exp, backend=backend, loss_every=50)
    assert_same(a, train(exp, backend="torch", loss_every=50))
    assert len(calls) <= 5 + 2 * -(-200 // DIVERGENCE_WINDOW), f"{len(calls)} chains for 5 recorded steps"


@pytest.mark.parametrize("form", FORMS)
def test_divergence_is_caught_at_its_first_step(form):
    """As the moment form reports it, with the loss recorded every step or every 1000th."""
    INITS = [Init("gaussian", 0.4, seed=1), Init("gaussian", 0.4, seed=2)]
    ens = Ensemble(experiment(steps=300, S=1), INITS, lrs=[0.05, 5.0], same_time=False)
    reports = []
    for backend, loss_every in [("torch", 1), (form, 1), (form, 1000)]:
        with pytest.raises(TrainingDiverged) as info:
            train(ens, loss_every=loss_every, backend=backend)
        reports.append((info.value.config, info.value.run, info.value.step))
    assert reports[0][0] == 1 and 0 < reports[0][2] < 300
    assert reports[1] == reports[0] and reports[2] == reports[0]


@pytest.mark.parametrize("backend", ["blas-per-sample", "fused-per-sample"])
def test_divergence_after_a_config_retired_per_sample(backend):
    """tests/test_ensemble.py's case: config 1 diverges at step 181, after config 0 left."""
    exp = Experiment(
        Teacher(5, 4, (3.0, 2.0, 1.0)),
        3,
        6,
        Init("gaussian", 0.4),
        lr=0.19,
        steps=400,
        batch_size=8,
        n_samples=40,
        sgd_runs=1,
    )
    ens = Ensemble(exp, [Init("gaussian", 1e-4, seed=1), Init("gaussian", 0.4)], lrs=[0.475, 0.19])
    with pytest.raises(TrainingDiverged, match=r"^config 1, run 1 \(SGD\) diverged at step 181 with lr=0.19"):
        train(ens, backend=backend, loss_every=1000)


def test_cost_model_formulas():
    """Square d = 128, L = 3, B = 20: 7 d^3 for the moment form, 8 d^2 B (+ 2 d^3 per recorded loss)."""
    widths, d = (128,) * 4, 128
    assert cost.moment_macs(widths) == 7 * d**3 and cost.moment_macs(widths, gd=True) == 6 * d**3
    assert cost.per_sample_macs(widths, 20, 0.0) == 8 * d * d * 20
    assert cost.per_sample_macs(widths, 20, 1.0) == 8 * d * d * 20 + 2 * d**3
    assert cost.chain_macs((10, 1024, 1024, 10)) == 10 * (1024 * 1024 + 10 * 1024)


@pytest.mark.parametrize(
    "widths, loss_every, kernel, form",
    [
        ((10, 10, 10, 10), 1, "fused", "moment"),
        ((8, 8, 8, 8), 1000, "fused", "moment"),
        ((32, 32, 32, 32), 1, "fused", "moment"),  # a tie: 7 d^3 = 8 d^2 B + 2 d^3 at d = 1.6 B
        ((32, 32, 32, 32), 1000, "fused", "per-sample"),
        ((128, 128, 128, 128), 1, "fused", "per-sample"),
        ((256, 256, 256, 256), 1000, "blas", "per-sample"),
        ((10, 128, 128, 10), 1, "fused", "moment"),
        ((10, 512, 512, 10), 1000, "fused", "moment"),
        ((10, 1024, 1024, 10), 1000, "fused", "moment"),
        ((512, 512, 512, 512), 1000, "blas", "per-sample"),
    ],
)
def test_auto_choice(widths, loss_every, kernel, form):
    assert cost.formulation(widths, 20, loss_every) == form
    assert cost.kernel(widths, "cpu", form) == kernel and cost.kernel(widths, "cuda", form) == "torch"
    d_out, d_in = widths[-1], widths[0]
    exp = Experiment(
        Teacher(d_out, d_in, (1.0,)),
        len(widths) - 1,
        tuple(widths[1:-1]),
        Init("lecun", 0.5),
        lr=0.01,
        steps=3,
        batch_size=20,
        n_samples=max(40, 2 * d_in),
        sgd_runs=2,
    )
    advance = engine._advance_for(exp, "auto", loss_every)
    if kernel == "fused" and not fused.supports(exp):
        assert advance is advance_torch
    else:
        assert isinstance(advance, per_sample.FormPath) and (advance.kernel, advance.form) == (kernel, form)


def test_replay_writes_every_loss_of_a_row_past_the_limit():
    """A direct call with no loss kept: a row past ``limit`` at a computed loss is replayed with
    every step's loss (the reference's); the other rows keep only their first."""
    exp = experiment(steps=40, S=2)
    problem = make_problem(exp)
    W = [w.expand(3, *w.shape).contiguous() for w in init_weights(exp)]
    table, idx = MomentTable(problem, False), BatchOrders(exp, 40, 49).take(40)
    full = torch.empty(40, 3, dtype=torch.float64)
    per_sample.FormPath(exp, "per-sample")([w.clone() for w in W], problem.Syx, table, idx, 0.05, full)
    limit = torch.full((3,), float("inf"), dtype=torch.float64)
    limit[2] = float(full[25, 2])  # the loss decreases: row 2 is past it from its first step
    sparse = torch.empty(40, 3, dtype=torch.float64)
    per_sample.FormPath(exp, "per-sample")(W, problem.Syx, table, idx, 0.05, sparse, np.zeros(40, bool), limit)
    torch.testing.assert_close(sparse[:, 2], full[:, 2], rtol=1e-12, atol=0)
    assert (sparse[1:, 1] == 0).all() and sparse[0, 1] == full[0, 1]
