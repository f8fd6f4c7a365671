"""Fuzz every public entry point with invalid specs: each must be refused by a ValueError whose
message names the field (hypothesis; 500 examples per entry point in the nightly profile).

A valid base spec has one field replaced by a value drawn from that field's invalid values
(wrong type, bool, str, fraction, nan/inf, out of range, empty, stacked, unsorted). The tally of
accepted/rejected specs per entry point is printed at the end of the module (run with -s)."""

import contextlib
import functools
import io
import math
from collections import Counter

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlncheck import presets, spectra
from dlncheck.config.experiment import Experiment, Init, Teacher
from dlncheck.config.validation import MAX_DEPTH, MAX_STEPS
from dlncheck.engine._train import train
from dlncheck.saddles import NormalForm
from dlncheck.suite import cli

NIGHTLY = settings.default.max_examples >= 400  # the plugin's nightly profile
FUZZ = settings(max_examples=500 if NIGHTLY else 50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TALLY: dict[str, Counter] = {}

T = Teacher(6, 6, (4.0, 2.0, 1.0), seed=1)
BASE = {
    "teacher": T,
    "depth": 3,
    "width": 8,
    "init": Init("gaussian", 0.1),
    "lr": 0.01,
    "steps": 50,
    "batch_size": 10,
    "n_samples": 60,
    "sgd_runs": 1,
}
EXP = Experiment(**BASE)
A = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

# ------------------------------------------------------------------------ invalid values
NAN_INF = st.sampled_from([math.nan, math.inf, -math.inf])
SOME_OBJECT = st.one_of(
    st.booleans(),
    st.text(max_size=4),
    st.lists(st.text(max_size=1), min_size=1, max_size=2),
    st.just(object()),
    st.just({"a": 1}),
)
NOT_A_NUMBER = st.one_of(SOME_OBJECT, st.none())
FRACTION = st.floats(-1e6, 1e6).filter(lambda x: not float(x).is_integer())


def bad_int(lo, hi=None):
    out = [NOT_A_NUMBER, FRACTION, NAN_INF, st.integers(max_value=lo - 1)]
    if hi is not None:
        out.append(st.integers(min_value=hi + 1, max_value=hi * 1000))
    return st.one_of(out)


def bad_float(lo=None, positive=False):
    out = [NOT_A_NUMBER, NAN_INF]
    if positive:
        out.append(st.floats(max_value=0.0, allow_nan=False))
    elif lo is not None:
        out.append(st.floats(max_value=lo, exclude_max=True, allow_nan=False, allow_infinity=False))
    return st.one_of(out)


BAD_SEED = st.one_of(bad_int(0), st.integers(min_value=2**63, max_value=2**70))
BAD_DEVICE = st.one_of(
    st.sampled_from(["tpu", "", "gpu", "cuda:99", "meta"] + ([] if torch.cuda.is_available() else ["cuda", "cuda:0"])),
    st.integers(),
    st.none(),
)
BAD_SEQUENCE = st.one_of(
    st.text(max_size=3),
    st.integers(),
    st.none(),
    st.lists(st.one_of(NOT_A_NUMBER, NAN_INF, st.floats(max_value=-1e-9)), min_size=1, max_size=3),
)


def choice_outside(choices):
    return st.one_of(st.text(max_size=8).filter(lambda s: s not in choices), st.integers(), st.none())


def unsorted_or_bad_svals():
    good = st.lists(st.floats(0, 10), min_size=2, max_size=5)
    return st.one_of(
        good.filter(lambda v: sorted(v, reverse=True) != v).map(torch.tensor),
        good.map(lambda v: torch.tensor(sorted(v, reverse=True) + [-1.0])),
        st.tuples(good, NAN_INF).map(lambda p: torch.tensor(sorted(p[0], reverse=True) + [p[1]])),
        st.lists(st.floats(0, 10), max_size=3),
    )  # a list, not a tensor


BAD_MATRIX = st.one_of(
    st.just(torch.tensor([1.0, 2.0])),
    st.just(torch.tensor([[math.nan, 1.0]])),
    st.just(torch.tensor([[math.inf]])),
    st.just(torch.eye(2, dtype=torch.int64)),
    st.text(max_size=3),
    st.none(),
    st.lists(st.floats(), max_size=2),
)
BAD_LAYERS = st.one_of(
    st.just(torch.randn(3, 4, 4)),
    st.just([]),
    st.just(()),
    st.none(),
    st.text(max_size=3),
    st.just([torch.eye(3), torch.tensor([1.0])]),
    st.just([torch.full((2, 2), math.nan)]),
    st.just({"W1": torch.eye(2)}),
)
BAD_CHECKPOINTS = st.one_of(
    st.just([]),
    st.booleans(),
    st.text(max_size=3),
    st.integers(max_value=1),
    FRACTION,
    NAN_INF,
    st.lists(FRACTION, min_size=1, max_size=3),
    st.lists(st.integers(min_value=51), min_size=1, max_size=3),
    st.lists(st.integers(max_value=-1), min_size=1, max_size=3),
    st.just([[0, 1], [2]]),
    st.just(torch.zeros(3, 2, 2, dtype=torch.int64)),
    st.just(torch.zeros(5, 2, dtype=torch.int64)),
)


# ------------------------------------------------------------------------ entry points
def experiment_call(name, value):
    return lambda: Experiment(**BASE | {name: value})


ENTRIES = {  # entry: {field: (invalid values, build(value) -> call)}
    "Teacher": {
        "d_out": (bad_int(1), lambda v: lambda: Teacher(v, 6, (1.0,))),
        "d_in": (bad_int(1), lambda v: lambda: Teacher(6, v, (1.0,))),
        "singular_values": (BAD_SEQUENCE, lambda v: lambda: Teacher(6, 6, v)),
        "seed": (BAD_SEED, lambda v: lambda: Teacher(6, 6, (1.0,), seed=v)),
    },
    "Init": {
        "kind": (choice_outside(("aligned", "balanced", "gaussian", "lecun")), lambda v: lambda: Init(v, 0.1)),
        "scale": (bad_float(0.0), lambda v: lambda: Init("gaussian", v)),
        "seed": (BAD_SEED, lambda v: lambda: Init("gaussian", 0.1, seed=v)),
    },
    "Experiment": {
        **{
            name: (strategy, functools.partial(experiment_call, name))
            for name, strategy in {
                "depth": bad_int(1, MAX_DEPTH),
                "lr": bad_float(positive=True),
                "steps": bad_int(1, MAX_STEPS),
                "batch_size": bad_int(1, 60),
                "n_samples": bad_int(6),
                "sgd_runs": bad_int(0),
                "seed": BAD_SEED,
                "label_noise": bad_float(0.0),
                "dtype": choice_outside(("float64", "float32")),
                "device": BAD_DEVICE,
                "teacher": NOT_A_NUMBER,
                "init": NOT_A_NUMBER,
                "width": st.one_of(bad_int(1), st.lists(bad_int(1), min_size=2, max_size=2)),
            }.items()
        },
    },
    "train": {
        "checkpoints": (BAD_CHECKPOINTS, lambda v: lambda: train(EXP, checkpoints=v)),
        "loss_every": (bad_int(1), lambda v: lambda: train(EXP, loss_every=v)),
        "progress": (
            st.one_of(st.integers(), st.text(max_size=3), st.none()),
            lambda v: lambda: train(EXP, progress=v),
        ),
        "memory_budget": (
            st.one_of(
                st.integers(max_value=0),
                st.booleans(),
                st.text(max_size=3).filter(lambda s: not s.strip().isdigit()),
                FRACTION.filter(lambda x: x < 0),
                NAN_INF,
            ),
            lambda v: lambda: train(EXP, memory_budget=v),
        ),
        "experiment": (NOT_A_NUMBER, lambda v: lambda: train(v)),
    },
    "spectra": {
        "A": (BAD_MATRIX, lambda v: lambda: spectra.numerical_rank(v, 1e-5)),
        "eps": (
            st.one_of(NAN_INF, st.floats(max_value=0.0), st.floats(min_value=1.0), st.text(max_size=3)),
            lambda v: lambda: spectra.numerical_rank(A, v),
        ),
        "atol": (
            st.one_of(SOME_OBJECT, NAN_INF, st.floats(max_value=0.0, exclude_max=True)),
            lambda v: lambda: spectra.numerical_rank(A, 1e-5, atol=v),
        ),
        "svals": (unsorted_or_bad_svals(), lambda v: lambda: spectra.effective_rank_from_svals(v)),
        "weights": (BAD_LAYERS, lambda v: lambda: spectra.rank_pattern(v, 1e-5)),
        "K": (bad_int(1), lambda v: lambda: spectra.log_spectrum(A, v)),
        "delta": (bad_float(positive=True), lambda v: lambda: spectra.log_spectrum(A, 2, delta=v)),
        "r": (
            st.one_of(FRACTION, st.text(max_size=2), st.none(), st.integers(min_value=4)),
            lambda v: lambda: spectra.singular_gap(torch.tensor([3.0, 2.0, 1.0]), v),
        ),
    },
    "NormalForm": {
        "M": (BAD_MATRIX, lambda v: lambda: NormalForm(v, [0], [3, 4, 3])),
        "S": (
            st.one_of(
                st.lists(st.one_of(FRACTION, st.booleans(), st.text(max_size=2)), min_size=1, max_size=2),
                st.just([0, 0]),
                st.integers(min_value=3).map(lambda i: [i]),
                st.text(max_size=3),
            ),
            lambda v: lambda: NormalForm(torch.eye(3, dtype=torch.float64), v, [3, 4, 3]),
        ),
        "widths": (
            st.one_of(
                st.lists(bad_int(1), min_size=3, max_size=3), st.just([3, 4]), st.just([4, 4, 3]), st.text(max_size=3)
            ),
            lambda v: lambda: NormalForm(torch.eye(3, dtype=torch.float64), [0], v),
        ),
    },
    "presets.experiment": {
        "regime": (choice_outside(presets.REGIMES), lambda v: lambda: presets.experiment(v, "lowrank", 2)),
        "teacher": (choice_outside(presets.TEACHERS), lambda v: lambda: presets.experiment("ntk", v, 2)),
        "depth": (bad_int(2, MAX_DEPTH), lambda v: lambda: presets.experiment("saddle", "lowrank", v)),
        "sgd_runs": (bad_int(0), lambda v: lambda: presets.experiment("ntk", "lowrank", 2, sgd_runs=v)),
        "lr": (bad_float(positive=True), lambda v: lambda: presets.experiment("ntk", "lowrank", 2, lr=v)),
        "device": (BAD_DEVICE, lambda v: lambda: presets.experiment("ntk", "lowrank", 2, device=v)),
    },
}


def cli_call(argv):
    """Run the CLI; return a call that raises ValueError(stderr) when it refuses (exit code 2)."""

    def call():
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = cli.main(argv)
        if code == 2 and err.getvalue().count("\n") == 1 and "Traceback" not in err.getvalue():
            raise ValueError(err.getvalue())

    return call


PRESET_TEXT = st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=20).filter(
    lambda s: not s.startswith("-") and s not in [presets.case_id(*c) for c in presets.cases()]
)
ENTRIES["cli"] = {
    "preset": (
        st.one_of(PRESET_TEXT, st.integers(MAX_DEPTH + 1, 10**6).map(lambda L: f"saddle-lowrank-L{L}")),
        lambda v: cli_call(["run", v]),
    ),
    "device": (
        st.sampled_from(["tpu", "gpu", "cuda:99"] + ([] if torch.cuda.is_available() else ["cuda"])),
        lambda v: cli_call(["run", "saddle-lowrank-L2", "--device", v]),
    ),
    "--out": (st.sampled_from(["", "   "]), lambda v: cli_call(["run", "saddle-lowrank-L2", "--out", v])),
    "sgd_runs": (st.integers(max_value=-1), lambda v: cli_call(["run", "saddle-lowrank-L2", "--sgd-runs", str(v)])),
}
FIELD_ALIASES = {("cli", "preset"): ("preset", "regime", "teacher", "depth")}


@pytest.fixture(scope="module", autouse=True)
def report_tally():
    yield
    for entry, counts in TALLY.items():
        print(f"\nfuzz {entry}: rejected {counts['rejected']}, accepted {counts['accepted']}", end="")


@pytest.mark.parametrize("entry", list(ENTRIES))
@FUZZ
@given(data=st.data())
def test_invalid_specs_are_rejected_naming_the_field(entry, data):
    field = data.draw(st.sampled_from(sorted(ENTRIES[entry])), label="field")
    strategy, build = ENTRIES[entry][field]
    value = data.draw(strategy, label="value")
    tally = TALLY.setdefault(entry, Counter())
    try:
        build(value)()
    except ValueError as error:
        tally["rejected"] += 1
        names = FIELD_ALIASES.get((entry, field), (field,))
        assert any(name in str(error) for name in names), f"{entry}: the message does not name {field}: {error}"
        return
    tally["accepted"] += 1
    pytest.fail(f"{entry} accepted {field}={value!r}")
