"""The fused C path equals the reference PyTorch path to 1e-12 (float64) on every field."""

from types import SimpleNamespace

import pytest
import torch
from engine_experiments import experiment, random_shape_experiment
from hypothesis import given, settings
from hypothesis import strategies as st
from same import assert_same

from dlncheck import (
    Ensemble,
    Experiment,
    Init,
    Teacher,
    train,
)
from dlncheck.engine import _fused as fused
from dlncheck.engine import _train as engine

pytestmark = pytest.mark.skipif(
    not fused.supports(
        Experiment(
            Teacher(2, 2, (1.0,)), 1, 1, Init("gaussian", 1.0), lr=0.1, steps=1, batch_size=1, n_samples=2, sgd_runs=0
        )
    ),
    reason="no C compiler: the engine runs the PyTorch path",
)


def both(spec, **kw):
    return train(spec, backend="fused", **kw), train(spec, backend="torch", **kw)


@pytest.mark.parametrize("noise", [0.0, 0.3], ids=["clean", "label-noise"])
@pytest.mark.parametrize("S", [0, 4], ids=["GD", "GD+SGD"])
def test_fused_equals_torch(noise, S):
    a, b = both(experiment(steps=400, S=S, label_noise=noise), checkpoints=7, loss_every=3)
    assert (b.loss[:, -1] < 0.5 * b.loss[:, 0]).all(), "the runs must train for the comparison to bite"
    assert_same(a, b)


@given(
    depth=st.integers(1, 5),
    widths=st.lists(st.integers(1, 13), min_size=4, max_size=4),
    seed=st.integers(0, 1000),
    batch=st.integers(1, 12),
)
@settings(max_examples=10, deadline=None)
def test_fused_equals_torch_for_random_shapes(depth, widths, seed, batch):
    assert_same(*both(random_shape_experiment(depth, widths, seed, batch), checkpoints=[0, 17, 60]))


@pytest.mark.parametrize("d_in, hidden, depth", [(5, 64, 3), (10, 70, 3), (12, 66, 4)])
def test_fused_equals_torch_through_the_one_pass_thin_update(d_in, hidden, depth):
    """Thin inputs (5 <= d_in <= 12) and hidden widths >= 64 take the kernel's one-pass product and
    update of each hidden layer (thin_pass), hidden widths off the SIMD width included."""
    teacher = Teacher(4, d_in, (2.0, 1.0, 0.5), seed=d_in)
    exp = experiment(teacher, depth, hidden, steps=30, S=2, init=Init("lecun", 0.8, seed=1), lr=0.02)
    assert fused.supports(exp)
    assert_same(*both(exp, checkpoints=[0, 11, 30]))


def test_fused_equals_torch_for_an_lr_ensemble_with_per_run_checkpoints():
    ens = Ensemble(
        experiment(steps=200), [Init("gaussian", 0.4, seed=1), Init("balanced", 0.3, seed=2)], lrs=[0.05, 0.1]
    )
    table = {0: torch.tensor([[0, 200], [3, -1], [150, 7], [-1, 199]]), 1: 5}
    for a, b in zip(*both(ens, checkpoints=table)):
        assert_same(a, b)


def test_fused_float32_within_its_roundoff():
    exp = experiment(dtype="float32", steps=200)
    a, b = both(exp, checkpoints=4)
    assert_same(a, b, rel=1e-12 * exp.roundoff_scale * 200)  # float32 roundoff, accumulated over 200 steps


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs CUDA: on a CPU-only machine Experiment(device='cuda') is refused first (tests/test_validation.py)",
)
def test_fused_backend_names_why_it_cannot_run_on_cuda():
    with pytest.raises(ValueError, match="backend='fused' is unavailable for device='cuda'.*CPU only"):
        train(experiment(device="cuda"), backend="fused")


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend='jax' is invalid"):
        train(experiment(), backend="jax")


def test_without_a_compiler_the_engine_warns_and_runs_the_torch_path(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setenv("DLNCHECK_BUILD_DIR", str(tmp_path))
    fused._library.cache_clear()
    engine._warn_once.cache_clear()
    try:
        exp = experiment(steps=30)
        with pytest.warns(RuntimeWarning, match="fused CPU kernel is unavailable .*no-such-compiler"):
            fallback = train(exp)
        assert_same(fallback, train(exp, backend="torch"), rel=0.0)
        with pytest.raises(ValueError, match="backend='fused' is unavailable .*no C compiler"):
            train(exp, backend="fused")
    finally:
        fused._library.cache_clear()


def test_advance_without_a_kernel_names_the_reason(monkeypatch, tmp_path):
    """fused.advance where the kernel cannot be built raises the reason (mypy: _library returns
    the reason as a str; advance used to call str.dln_advance, an AttributeError)."""
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setenv("DLNCHECK_BUILD_DIR", str(tmp_path))
    fused._library.cache_clear()
    try:
        W = [torch.zeros(2, 3, 3, dtype=torch.float64)]
        table = SimpleNamespace(padded_outer=torch.zeros(5, 12, dtype=torch.float64))
        idx = torch.zeros(4, 1, 2, dtype=torch.long)
        residual = torch.empty(4, 2, dtype=torch.float64)
        with pytest.raises(RuntimeError, match="fused kernel is unavailable: no C compiler"):
            fused.advance(W, torch.zeros(3, 3, dtype=torch.float64), table, idx, 0.1, residual)
    finally:
        fused._library.cache_clear()
