"""Configuration: validation messages, teacher factors, data whitening, init properties, presets."""

import json

import pytest
import torch

from dlncheck import presets
from dlncheck.config.data import init_weights, make_problem
from dlncheck.config.experiment import Experiment, Init, Teacher
from dlncheck.suite.tiers import NIGHTLY, QUICK

T = Teacher(5, 4, (3.0, 1.0))


def make(**kw):
    args = dict(
        teacher=T,
        depth=3,
        width=6,
        init=Init("gaussian", 0.1),
        lr=0.01,
        steps=10,
        batch_size=5,
        n_samples=20,
        sgd_runs=2,
    )
    return Experiment(**args | kw)


def test_teacher_factors_and_kinds():
    torch.testing.assert_close(T.U @ T.U.T, torch.eye(5, dtype=torch.float64))
    torch.testing.assert_close(T.V.T @ T.V, torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(torch.linalg.svdvals(T.M), T.s)
    assert T.s.tolist() == [3.0, 1.0, 0.0, 0.0] and T.rank == 2 and T.kind == "lowrank"
    assert Teacher(3, 3, (3, 2, 1)).kind == "fullrank"
    assert Teacher(4, 4, (2, 2, 1)).kind == "degenerate"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(depth=0), "depth"),
        (dict(width=(4,)), "width"),
        (dict(lr=0.0), "lr"),
        (dict(batch_size=30), "batch_size"),
        (dict(n_samples=3), "n_samples"),
        (dict(dtype="float16"), "dtype"),
        (dict(sgd_runs=-1), "sgd_runs"),
    ],
)
def test_validation_names_field_and_fix(kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field}=.*: (use|give|choose|train|pass)"):
        make(**kwargs)


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: Init("orthogonal", 0.1), "Init.kind"),
        (lambda: Init("gaussian", -1), "Init.scale"),
        (lambda: Teacher(3, 3, (1, 2)), "singular_values"),
        (lambda: Teacher(2, 2, (3, 2, 1)), "singular_values"),
    ],
)
def test_init_and_teacher_validation(build, field):
    with pytest.raises(ValueError, match=rf"^{field}="):
        build()


def test_key_is_stable_and_content_addressed():
    a, b = make(), make(width=(6, 6))
    assert a.widths == (4, 6, 6, 5) and a.key() == b.key()
    assert a.key() != make(seed=1).key()
    assert Experiment.from_dict(json.loads(json.dumps(a.to_dict()))) == b


def test_data_is_whitened_and_labels_follow_teacher():
    p = make_problem(make())
    torch.testing.assert_close(p.X @ p.X.T / 20, torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(p.Syx, T.M)
    assert abs(p.loss_offset) < 1e-12
    noisy = make_problem(make(label_noise=0.1))
    assert noisy.loss_offset > 0


@pytest.mark.parametrize("kind", ["aligned", "balanced"])
def test_balanced_inits_are_balanced(kind):
    W = init_weights(make(init=Init(kind, 0.3)))
    for l in range(2):
        torch.testing.assert_close(W[l + 1].T @ W[l + 1], W[l] @ W[l].T)
    if kind == "aligned":
        m = len(T.s)
        u = T.U[:, :m].T @ W[2] @ W[1] @ W[0] @ T.V
        torch.testing.assert_close(u, 0.3**3 * torch.eye(m, 4, dtype=torch.float64))


def test_presets_cover_the_grid():
    quick = QUICK.presets()
    assert len(quick) == 18 and ("saddle", "lowrank", 3) in quick
    assert len(NIGHTLY.presets()) == len(presets.cases()) == 27
    assert presets.case_id("saddle", "lowrank", 3) == "saddle-lowrank-L3"
    e = presets.experiment("ntk", "fullrank", 2, sgd_runs=3, dtype="float32")
    assert e.sgd_runs == 3 and e.dtype == "float32" and e.widths == (4, 128, 4)
    assert presets.experiment("saddle", "lowrank", 2).sgd_runs == presets.SGD_RUNS == QUICK.sgd_runs
    assert presets.experiment("saddle", "lowrank", 2, sgd_runs=NIGHTLY.sgd_runs).sgd_runs == 32
    with pytest.raises(ValueError, match="regime="):
        presets.experiment("lazy", "lowrank", 2)
