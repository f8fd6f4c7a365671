"""Ensembles: train(ensemble)[i] equals train(ensemble.experiment(i)) field by field (1e-12
relative), per-config lr on a shared time axis, validation, and per-config caching."""

import pytest
import torch
from same import assert_same

from dlncheck import (
    Ensemble,
    EnsembleTrajectory,
    Experiment,
    Init,
    Teacher,
    TrainingDiverged,
    train,
)
from dlncheck.config.data import make_problem
from dlncheck.store.cache import TrajectoryCache

TEACHER = Teacher(5, 4, (3.0, 2.0, 1.0))
INITS = [Init("gaussian", 0.4, seed=1), Init("balanced", 0.3, seed=2), Init("gaussian", 0.2, seed=3)]


def experiment(steps=200, S=3, **kw):
    return Experiment(
        TEACHER, 3, 6, Init("gaussian", 0.4), lr=0.05, steps=steps, batch_size=8, n_samples=40, sgd_runs=S, **kw
    )


@pytest.mark.parametrize("noise", [0.0, 0.3], ids=["clean", "label-noise"])
@pytest.mark.parametrize("S", [0, 3], ids=["GD", "GD+SGD"])
def test_ensemble_equals_separate_calls(noise, S):
    ens = Ensemble(experiment(S=S, label_noise=noise), INITS)
    et = train(ens, checkpoints=6, loss_every=3)
    assert isinstance(et, EnsembleTrajectory) and len(et) == len(ens) == 3
    for i in range(3):
        assert_same(et[i], train(ens.experiment(i), checkpoints=6, loss_every=3))
    assert not torch.equal(et[0].loss, et[2].loss), "configs must differ"


def test_per_config_lr_covers_the_same_time():
    ens = Ensemble(experiment(steps=100), INITS, lrs=[0.05, 0.025, 0.1])
    assert ens.steps == (100, 200, 50)
    table = {1: torch.tensor([[0, 200], [7, -1], [150, 3], [-1, 199]]), 2: [0, 10, 50]}
    et = train(ens, checkpoints=table)
    for i in range(3):
        assert_same(et[i], train(ens.experiment(i), checkpoints=table.get(i)))
        assert et[i].times[-1] == pytest.approx(5.0)
    torch.testing.assert_close(
        et[1].checkpoint_times[1], torch.tensor([0.175, float("nan")], dtype=torch.float64), equal_nan=True
    )
    frame = et.configs
    assert frame.steps.tolist() == [100, 200, 50] and frame.lr.tolist() == [0.05, 0.025, 0.1]
    assert frame.init.tolist() == ["gaussian", "balanced", "gaussian"] and frame.init_seed.tolist() == [1, 2, 3]
    assert frame.time.tolist() == pytest.approx([5.0] * 3)


def test_same_time_false_and_grid():
    ens = Ensemble.grid(experiment(steps=40), INITS[:2], [0.05, 0.02], same_time=False)
    assert len(ens) == 4 and ens.steps == (40,) * 4
    assert [(e.init, e.lr) for e in ens.experiments] == [
        (INITS[0], 0.05),
        (INITS[0], 0.02),
        (INITS[1], 0.05),
        (INITS[1], 0.02),
    ]
    et = train(ens, checkpoints=[0, 20, 40])
    for i in range(4):
        assert_same(et[i], train(ens.experiment(i), checkpoints=[0, 20, 40]))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: Ensemble("exp", INITS), r"^experiment=.*: pass a dlncheck.Experiment"),
        (lambda: Ensemble(experiment(), []), r"^inits=.*: give a non-empty list"),
        (lambda: Ensemble(experiment(), [0.1]), r"^inits=.*: give a non-empty list"),
        (lambda: Ensemble(experiment(), INITS, lrs=[0.1]), r"^lrs=.*: give one lr per init \(3 values\)"),
        (lambda: Ensemble(experiment(), INITS, lrs=[0.1, -1, 0.1]), r"^lrs=.*: use learning rates > 0"),
        (lambda: Ensemble(experiment(steps=2), INITS, lrs=[0.05, 0.05, 1.0]), r"^lrs=.*config 2 .*0 steps"),
    ],
)
def test_ensemble_validation(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_ensemble_train_errors():
    ens = Ensemble(experiment(steps=20), INITS, lrs=[0.05, 0.1, 0.05])
    with pytest.raises(ValueError, match="steps=10"):
        train(ens, checkpoints=[0, 20])  # config 1 trains 10 steps
    with pytest.raises(ValueError, match="keys"):
        train(ens, checkpoints={5: 3})
    with pytest.raises(IndexError, match="config 3 is out of range"):
        ens.experiment(3)


def test_cache_stores_each_config_and_trains_only_missing(tmp_path, monkeypatch):
    import dlncheck.store.cache as cache_module

    calls = []

    def counting_train(spec, **kw):
        calls.append(len(spec) if isinstance(spec, Ensemble) else 1)
        return train(spec, **kw)

    monkeypatch.setattr(cache_module, "train", counting_train)
    base = experiment(steps=60)
    ens = Ensemble(base, INITS[:2], lrs=[0.05, 0.1])
    et = TrajectoryCache(tmp_path).ensemble(ens, checkpoints=4)
    assert calls == [2]
    fresh = TrajectoryCache(tmp_path)
    assert_same(fresh(ens.experiment(1), checkpoints=4), et[1])
    assert calls == [2], "one config of a cached ensemble must train nothing"
    bigger = Ensemble(base, INITS, lrs=[0.05, 0.1, 0.05])
    et3 = fresh.ensemble(bigger, checkpoints=4)
    assert calls == [2, 1], "only the missing config trains"
    assert_same(et3[2], train(bigger.experiment(2), checkpoints=4))
    assert fresh.ensemble(bigger, checkpoints=4)[0] is et3[0]


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_divergence_is_caught_at_its_first_step_and_names_the_config(backend):
    exp = experiment(steps=300, S=1)
    ens = Ensemble(exp, INITS[:2], lrs=[0.05, 5.0], same_time=False)
    message = r"^config 1, run \d \((GD|SGD)\) diverged at step \d+ with lr=5"
    with pytest.raises(TrainingDiverged, match=message) as every:
        train(ens, backend=backend)
    with pytest.raises(TrainingDiverged) as sparse:
        train(ens, loss_every=1000, backend=backend)  # unrecorded steps are checked too
    assert (every.value.config, every.value.step, every.value.run) == (1, sparse.value.step, sparse.value.run)
    assert 0 < every.value.step < 300


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_divergence_after_a_config_retired_names_the_right_config_and_step(backend):
    """Config 0 (tiny init, lr 0.475) finishes at step 160 and leaves the program; config 1
    (lr 0.19) diverges at step 181, as it does alone: the rows still training map back to it."""
    exp = Experiment(TEACHER, 3, 6, Init("gaussian", 0.4), lr=0.19, steps=400, batch_size=8, n_samples=40, sgd_runs=1)
    ens = Ensemble(exp, [Init("gaussian", 1e-4, seed=1), Init("gaussian", 0.4)], lrs=[0.475, 0.19])
    assert ens.steps == (160, 400)
    with pytest.raises(TrainingDiverged) as alone:
        train(ens.experiment(1), backend=backend)
    with pytest.raises(TrainingDiverged, match=r"^config 1, run 1 \(SGD\) diverged at step 181 with lr=0.19"):
        train(ens, backend=backend)
    assert alone.value.step == 181


def test_finished_configs_leave_the_program(monkeypatch):
    """Per-config lr at the same time: config c is stepped steps_c times, not max steps_c
    (lrs 0.1, 0.05, 0.025: 25 + 50 + 100 row-steps per run instead of 3 x 100)."""
    import dlncheck.engine._train as engine
    from dlncheck.engine._torch_path import advance_torch

    stepped = []

    def counting(W, Syx, table, idx, lr, residual):
        stepped.append(W[0].shape[0] * idx.shape[0])
        advance_torch(W, Syx, table, idx, lr, residual)

    monkeypatch.setattr(engine, "_advance_for", lambda experiment, backend, loss_every=1: counting)
    ens = Ensemble(experiment(steps=50, S=2), INITS, lrs=[0.1, 0.05, 0.025])
    assert ens.steps == (25, 50, 100)
    et = train(ens, checkpoints=5)
    assert sum(stepped) == ens.base.runs * (25 + 50 + 100)
    assert len(et[1:]) == 2 and et[1:][0] is et[1]  # a slice is a list of Trajectory (typed by overload)
    monkeypatch.undo()
    for i in range(3):
        assert_same(et[i], train(ens.experiment(i), checkpoints=5))


def test_trajectory_arrays_round_trip_with_its_time_axis_and_loss_offset():
    exp = experiment(steps=50, label_noise=0.3)
    traj = train(exp, checkpoints=torch.tensor([[0, 50], [7, -1], [20, 3], [-1, 49]]), loss_every=5)
    assert traj.loss_offset > 0
    back = type(traj).from_arrays(traj.to_arrays(prefix="t_"), exp, prefix="t_")
    assert_same(back, traj, rel=0.0)
    expected = torch.tensor([[0, 2.5], [0.35, float("nan")], [1.0, 0.15], [float("nan"), 2.45]], dtype=torch.float64)
    torch.testing.assert_close(traj.checkpoint_times, expected, equal_nan=True)
    W1, W2, W3 = traj.initial_weights
    p = make_problem(exp)
    direct = 0.5 * (p.Y - W3 @ W2 @ W1 @ p.X).square().sum() / exp.n_samples  # 1/(2n) sum ||y - W x||^2
    torch.testing.assert_close(traj.loss[:, 0], direct.expand(4), rtol=1e-12, atol=0)
