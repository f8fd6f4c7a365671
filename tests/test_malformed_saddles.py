"""Malformed arguments to the saddle normal form, certify, the sampler, the run statistics and the
train arguments checkpoints and loss_every (issue #30). Each call raises an InvalidArgument whose
message starts with the argument's name, or returns its documented result; sizes are checked
against the memory budget before anything is allocated. Strategies: tests/malformed.py."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from malformed import (
    BAD_Z,
    F64,
    FUZZ,
    MATRIX_KINDS,
    METADATA_KINDS,
    NAN_INF,
    NF,
    NOT_NUMBER,
    Z0,
    A,
    Entry,
    M,
    bad_int,
    bad_nonneg,
    bad_positive,
    documented,
    malformed,
    malformed_layers,
    print_tally,
    run,
    with_entry,
)

from dlncheck.config.experiment import Experiment, Init, Teacher
from dlncheck.config.validation import InvalidArgument
from dlncheck.engine._train import train
from dlncheck.engine.budget import MemoryBudgetExceeded
from dlncheck.measure import stats
from dlncheck.saddles import NormalForm, certify, sample

ENTRIES = [
    Entry("NormalForm", "M", malformed(M, MATRIX_KINDS), lambda v: lambda: NormalForm(v, [0], [3, 4, 3])),
    Entry(
        "NormalForm", "M", st.sampled_from([1e300, 1e100, -1e80]), lambda v: lambda: NormalForm(M * v, [0], [3, 4, 3])
    ),
    Entry(
        "NormalForm",
        "dtype",
        st.sampled_from([torch.float16, torch.bfloat16, torch.complex128, torch.int64, "half", None]),
        lambda v: lambda: NormalForm(M, [0], [3, 4, 3], dtype=v),
    ),
    Entry(
        "NormalForm",
        "device",
        st.sampled_from(["tpu", "cuda:99", 3]),
        lambda v: lambda: NormalForm(M, [0], [3, 4, 3], device=v),
    ),
    Entry("NormalForm", "Z", BAD_Z, lambda v: lambda: NF.energy(v)),
    Entry("NormalForm", "Z", BAD_Z, lambda v: lambda: NF.weights(v)),
    Entry("NormalForm", "chains", bad_int(1, 10**14, optional=True), lambda v: lambda: NF.zeros(v)),
    Entry("NormalForm", "chains", bad_int(1, 10**14), lambda v: lambda: NF.zero_block_sample((), v)),
    Entry("NormalForm", "seed", bad_int(0, 2**63 - 1), lambda v: lambda: NF.zero_block_sample((), 2, seed=v)),
    Entry("NormalForm", "scale", bad_nonneg(), lambda v: lambda: NF.zero_block_sample((), 2, scale=v)),
    Entry(
        "NormalForm",
        "zero_blocks",
        st.sampled_from([(0,), (3,), (1, 1), "1", (1.5,)]),
        lambda v: lambda: NF.zero_block_sample(v, 2),
    ),
    Entry("NormalForm", "l", bad_int(1, 2), lambda v: lambda: NF.dmu(Z0, v)),
    Entry("NormalForm", "sigma", malformed(NF.sigma, METADATA_KINDS), lambda v: lambda: NF.energy(Z0, v)),
    Entry("certify", "weights", malformed_layers([w[0] for w in NF.weights(Z0)]), lambda v: lambda: certify(v, M)),
    Entry("certify", "M", malformed(M, MATRIX_KINDS), lambda v: lambda: certify([w[0] for w in NF.weights(Z0)], v)),
    Entry(
        "certify",
        "method",
        st.sampled_from(["arpack", None, 1]),
        lambda v: lambda: certify([w[0] for w in NF.weights(Z0)], M, method=v),
    ),
    Entry("certify", "k", bad_int(1), lambda v: lambda: certify([w[0] for w in NF.weights(Z0)], M, k=v)),
    Entry(
        "certify",
        "loss_tol",
        bad_nonneg(optional=True),
        lambda v: lambda: certify([w[0] for w in NF.weights(Z0)], M, loss_tol=v),
    ),
    Entry("certify", "seed", bad_int(0), lambda v: lambda: certify([w[0] for w in NF.weights(Z0)], M, seed=v)),
    Entry("sample", "chains", bad_int(1, 10**14), lambda v: lambda: sample(NF, v, 2)),
    Entry("sample", "steps", bad_int(1, 10**8), lambda v: lambda: sample(NF, 2, v)),
    Entry("sample", "polish", bad_int(0, 10**8), lambda v: lambda: sample(NF, 2, 2, polish=v)),
    Entry("sample", "record_every", bad_int(1), lambda v: lambda: sample(NF, 2, 2, record_every=v)),
    Entry("sample", "step_size", bad_positive(), lambda v: lambda: sample(NF, 2, 2, step_size=v)),
    Entry("sample", "beta", bad_positive(), lambda v: lambda: sample(NF, 2, 2, beta=v)),
    Entry("sample", "beta_final", bad_positive(optional=True), lambda v: lambda: sample(NF, 2, 2, beta_final=v)),
    Entry("sample", "alpha", bad_nonneg(), lambda v: lambda: sample(NF, 2, 2, alpha=v)),
    Entry("sample", "norm_strength", bad_nonneg(), lambda v: lambda: sample(NF, 2, 2, norm_strength=v)),
    Entry("sample", "norm_target", bad_nonneg(), lambda v: lambda: sample(NF, 2, 2, norm_target=v)),
    Entry("sample", "init_scale", bad_nonneg(), lambda v: lambda: sample(NF, 2, 2, init_scale=v)),
    Entry("sample", "max_energy", bad_positive(), lambda v: lambda: sample(NF, 2, 2, max_energy=v)),
    Entry("sample", "seed", bad_int(0, 2**63 - 1), lambda v: lambda: sample(NF, 2, 2, seed=v)),
    Entry("sample", "mala", st.sampled_from([1, "yes", None]), lambda v: lambda: sample(NF, 2, 2, mala=v)),
    Entry("sample", "progress", st.sampled_from([1, "yes", None]), lambda v: lambda: sample(NF, 2, 2, progress=v)),
    Entry("sample", "batch_size", bad_int(1, optional=True), lambda v: lambda: sample(NF, 2, 2, batch_size=v)),
    Entry(
        "sample",
        "noise",
        st.sampled_from([0.5, "yes", None, torch.tensor([0.5, 1.0]), torch.ones(3), torch.tensor([math.nan, 1.0])]),
        lambda v: lambda: sample(NF, 2, 2, noise=v),
    ),
    Entry(
        "sample",
        "zero_blocks",
        st.sampled_from([(0,), (3,), (1, 1), "1"]),
        lambda v: lambda: sample(NF, 2, 2, zero_blocks=v),
    ),
    Entry(
        "sample",
        "norm_blocks",
        st.sampled_from([(0,), (3,), (1, 1), "1"]),
        lambda v: lambda: sample(NF, 2, 2, norm_blocks=v),
    ),
    Entry(
        "sample",
        "init",
        st.one_of(
            BAD_Z.filter(lambda v: v is not None),  # None: the default start
            st.just([with_entry(math.nan, 0, Z0[0]), Z0[1]]),
            st.just([z[:1].expand(5, *z.shape[1:]) for z in Z0]),
        ),
        lambda v: lambda: sample(NF, 2, 2, init=v),
    ),
    Entry("sample", "nf", st.sampled_from([None, M, "nf"]), lambda v: lambda: sample(v, 2, 2)),
    Entry(
        "stats",
        "x",
        st.one_of(
            malformed(A, ("empty-rows", "empty-cols", "nan", "inf", "-inf", "complex", "scalar", "none", "text")),
            st.just([]),
        ),
        lambda v: lambda: stats.summarize(v, n_boot=20),
    ),
    Entry(
        "stats",
        "x",
        malformed(A, ("empty-rows", "nan", "inf", "complex", "scalar", "none")),
        lambda v: lambda: stats.mean(v),
    ),
    Entry(
        "stats",
        "x",
        malformed(A, ("empty-rows", "nan", "-inf", "complex", "scalar", "text")),
        lambda v: lambda: stats.std(v),
    ),
    Entry(
        "stats",
        "x",
        malformed(A, ("empty-cols", "nan", "inf", "complex", "scalar", "none")),
        lambda v: lambda: stats.sem(v),
    ),
    Entry("stats", "dim", bad_int(-2, 1), lambda v: lambda: stats.mean(A, dim=v)),
    Entry("stats", "n_boot", bad_int(1, 10**15), lambda v: lambda: stats.bootstrap_ci(A, n_boot=v)),
    Entry(
        "stats",
        "level",
        st.one_of(NAN_INF, st.floats(max_value=0.0), st.floats(min_value=1.0), NOT_NUMBER),
        lambda v: lambda: stats.bootstrap_ci(A, n_boot=10, level=v),
    ),
    Entry("stats", "seed", bad_int(0, 2**63 - 1), lambda v: lambda: stats.bootstrap_ci(A, n_boot=10, seed=v)),
    Entry("stats", "chunk_elems", bad_int(1), lambda v: lambda: stats.bootstrap_ci(A, n_boot=10, chunk_elems=v)),
    Entry(
        "stats",
        "statistic",
        st.sampled_from(["mean", 1]),
        lambda v: lambda: stats.bootstrap_ci(A, n_boot=10, statistic=v),
    ),
    Entry("stats", "successes", st.one_of(bad_int(0, 10)), lambda v: lambda: stats.wilson_interval(v, 10)),
    Entry("stats", "n", bad_int(0), lambda v: lambda: stats.wilson_interval(0, v)),
    Entry(
        "stats",
        "level",
        st.one_of(NAN_INF, st.floats(max_value=0.0), st.floats(min_value=1.0)),
        lambda v: lambda: stats.wilson_interval(1, 2, v),
    ),
    Entry(
        "stats",
        "den",
        st.sampled_from([None, 1.0, torch.ones(5), torch.ones(2, 2) * 1j]),
        lambda v: lambda: stats.safe_ratio(torch.ones(4, 3), v),
    ),
]


@pytest.fixture(scope="module", autouse=True)
def report_tally():
    yield
    print_tally(("NormalForm", "certify", "sample", "stats", "train"))


@pytest.mark.parametrize("entry", ENTRIES, ids=[f"{e.module}-{e.field}-{i}" for i, e in enumerate(ENTRIES)])
@FUZZ
@given(data=st.data())
def test_malformed_inputs_raise_an_error_naming_the_argument(entry, data):
    run(entry, data.draw(entry.values, label=entry.field))


def test_documented_results_of_unusual_but_valid_inputs():
    """Odd but valid inputs give their documented result."""
    # the normal form converts a float32 or half M to its dtype; non-finite blocks give non-finite energies
    documented("NormalForm", torch.equal(NormalForm(M.half(), [0], [3, 4, 3]).M, M))
    documented("NormalForm", not bool(torch.isfinite(NF.energy([with_entry(math.nan, 0, Z0[0]), Z0[1]])).all()))
    documented("NormalForm", not bool(torch.isfinite(NF.energy(Z0, with_entry(math.nan, 0, NF.sigma))).all()))
    documented("NormalForm", NF.zeros(None)[0].shape == NF.shapes[0])  # no chain axis
    # stats: integer and half runs are averaged in float64
    documented("stats", stats.mean(torch.tensor([1, 2])).dtype == F64)


def test_train_checkpoints_and_loss_every_are_sized_before_any_allocation():
    """checkpoints=10**9 over 50 steps is every step (the grid np.geomspace would have drawn, without
    drawing 10**9 points); over 10**7 steps it is refused by the memory budget before any work;
    loss_every beyond MAX_STEPS is a named error (was a TypeError from torch)."""
    exp = Experiment(Teacher(4, 4, (2.0, 1.0), seed=1), 2, 5, Init("gaussian", 0.1), 0.05, 50, 5, 20, sgd_runs=1)
    traj = train(exp, checkpoints=10**9)
    documented("train", torch.equal(traj.checkpoint_steps, torch.arange(51)))
    with pytest.raises(MemoryBudgetExceeded, match=r"^memory_budget="):
        train(dataclasses.replace(exp, steps=10**7), checkpoints=10**9, memory_budget="1G")
    for bad in (1e30, 10**9, 2**70):
        with pytest.raises(InvalidArgument, match=r"^loss_every="):
            train(exp, loss_every=bad)
