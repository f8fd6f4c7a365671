"""Strategies for malformed arguments (issue #30) and the check every fuzzed call must pass: an
InvalidArgument whose message starts with the argument's name, or a documented result. Shared by
test_malformed_spectra.py and test_malformed_saddles.py; the tallies print at the end (run with -s)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from dlncheck.config.validation import InvalidArgument
from dlncheck.saddles import NormalForm

NIGHTLY = settings.default.max_examples >= 400
FUZZ = settings(max_examples=100 if NIGHTLY else 12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TALLY: dict[str, Counter] = {}
F64 = torch.float64


def rand(*shape, seed=0, dtype=F64):
    return torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


A = rand(4, 3)
SV = torch.linalg.svdvals(A)
W3 = [rand(3, 2, seed=1), rand(4, 3, seed=2), rand(2, 4, seed=3)]
M = torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=F64))
NF = NormalForm(M, [0], [3, 4, 3])
Z0 = NF.zero_block_sample((), chains=2, seed=1)


# ------------------------------------------------------------------------ malformed tensors
def with_entry(value, index: int = 0, like: torch.Tensor = A) -> torch.Tensor:
    """``like`` with one entry set to ``value``."""
    out = like.clone()
    out.view(-1)[index % out.numel()] = value
    return out


TENSOR_MAKERS: dict[str, Callable[[torch.Tensor, int], object]] = {
    "empty-rows": lambda t, i: t[:0],
    "empty-cols": lambda t, i: t[..., :0],
    "empty-batch": lambda t, i: t.expand(0, *t.shape),
    "nan": lambda t, i: with_entry(math.nan, i, t),
    "inf": lambda t, i: with_entry(math.inf, i, t),
    "-inf": lambda t, i: with_entry(-math.inf, i, t),
    "half": lambda t, i: t.half(),
    "bfloat16": lambda t, i: t.bfloat16(),
    "complex": lambda t, i: t.to(torch.complex128),
    "int": lambda t, i: t.round().long(),
    "bool": lambda t, i: t > 0,
    "scalar": lambda t, i: t.reshape(-1)[0],
    "list": lambda t, i: t.tolist(),
    "none": lambda t, i: None,
    "text": lambda t, i: "A",
}


#: what a matrix argument that is converted to float64 (NormalForm's and certify's M) cannot be
MATRIX_KINDS = (
    "empty-rows",
    "empty-cols",
    "empty-batch",
    "nan",
    "inf",
    "-inf",
    "complex",
    "bool",
    "scalar",
    "none",
    "text",
)


#: what a check of type, dtype and shape sees (values are not read)
METADATA_KINDS = tuple(k for k in TENSOR_MAKERS if k not in ("nan", "inf", "-inf"))


def malformed(like: torch.Tensor, kinds=tuple(TENSOR_MAKERS)):
    """A malformed version of ``like`` (each kind in ``kinds``), drawn by name and entry index."""
    return st.tuples(st.sampled_from(kinds), st.integers(0, 63)).map(lambda p: TENSOR_MAKERS[p[0]](like, p[1]))


def malformed_layers(layers: list[torch.Tensor], values: bool = True):
    """A layer list with one malformed layer, or batches/dtypes that differ, or shapes that do not
    compose; ``values=False``: only what a metadata check sees (no nan/inf, no overflow, no [])."""
    kinds = list(TENSOR_MAKERS) if values else list(METADATA_KINDS)
    one_bad = st.tuples(st.integers(0, len(layers) - 1), st.sampled_from(kinds), st.integers(0, 63)).map(
        lambda p: [TENSOR_MAKERS[p[1]](w, p[2]) if l == p[0] else w for l, w in enumerate(layers)]
    )
    fixed = [
        [w.expand(2, *w.shape) if l == 0 else w.expand(5, *w.shape) for l, w in enumerate(layers)],
        [w.float() if l == len(layers) - 1 else w for l, w in enumerate(layers)],
        [w.mT for w in layers],
        list(reversed(layers)),
        torch.stack([rand(3, 3)] * 3),
        None,
    ]
    if values:
        fixed += [[], [w * 1e120 for w in layers]]  # no layer; valid layers whose products overflow float64
    return st.one_of(one_bad, st.sampled_from(fixed))


NAN_INF = st.sampled_from([math.nan, math.inf, -math.inf])
NOT_NUMBER = st.one_of(st.text(max_size=3), st.just([0.5]), st.just(object()), st.booleans())


def bad_int(lo: int, hi: int | None = None, optional: bool = False):
    """Not an integer in [lo, hi] (None too, unless ``optional``: None is then the default)."""
    out = [
        NOT_NUMBER if optional else st.one_of(NOT_NUMBER, st.none()),
        NAN_INF,
        st.floats(-1e3, 1e3).filter(lambda x: not x.is_integer()),
        st.integers(max_value=lo - 1),
    ]
    if hi is not None:
        out.append(st.integers(hi + 1, max(10**18, 4 * hi)))
    return st.one_of(out)


def bad_positive(optional: bool = False):
    """Not a finite number > 0 (None too, unless ``optional``)."""
    nothing = st.nothing() if optional else st.none()
    return st.one_of(NOT_NUMBER, nothing, NAN_INF, st.floats(max_value=0.0, allow_nan=False))


def bad_nonneg(optional: bool = False):
    """Not a finite number >= 0 (None too, unless ``optional``)."""
    nothing = st.nothing() if optional else st.none()
    return st.one_of(NOT_NUMBER, nothing, NAN_INF, st.floats(max_value=-1e-12, allow_nan=False, allow_infinity=False))


BAD_EPS = st.one_of(
    NAN_INF,
    st.floats(max_value=0.0),
    st.floats(min_value=1.0),
    st.sampled_from([[], (), torch.tensor([]), torch.tensor([0.1j]), ["a"], torch.tensor([0.1, 0.2, 0.3]), "0.1"]),
    st.sampled_from([torch.tensor([0.5, math.nan]), torch.tensor([True]), [0.1, 1.5]]),
)
BAD_ATOL = st.one_of(
    NAN_INF,
    st.floats(max_value=-1e-12, allow_nan=False),
    st.sampled_from([torch.tensor([]), torch.tensor([1j]), torch.tensor([1.0, 2.0, 3.0]), "0", [0.1]]),
)
BAD_PATTERN = st.one_of(
    malformed(torch.tensor([[2.0, 1.0], [0.0, 1.0]], dtype=F64), ("nan", "inf", "complex", "bool", "empty-rows")),
    st.sampled_from(
        [torch.ones(2, 3), torch.tensor([1, 2]), -torch.ones(2, 2, dtype=torch.long), torch.ones(200, 200), "r", None]
    ),
)
BAD_SVALS = st.one_of(
    malformed(SV, ("empty-cols", "nan", "inf", "half", "complex", "int", "scalar", "list", "none")),
    st.sampled_from([SV.flip(-1), -SV, torch.empty(3, 0, dtype=F64)]),
)
BAD_SVALS_DICT = st.sampled_from(
    [
        {},
        None,
        [SV],
        {(1, 1): SV.flip(-1)},
        {(0, 1): SV},
        {(2, 1): SV},
        {(1, 1): SV, (1, 2): SV.expand(2, 3)},
        {"a": SV},
    ]
)
BAD_Z = st.one_of(
    st.sampled_from([Z0[:1], None, "Z", torch.stack([Z0[0]] * 2), [z.float() for z in Z0], [z.mT for z in Z0]]),
    st.just([Z0[0][0].expand(3, *Z0[0].shape[1:]), Z0[1]]),  # chain axes 3 and 2 do not broadcast
)


def finite(out) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in (out if isinstance(out, (tuple, list)) else [out]))


@dataclass(frozen=True)
class Entry:
    module: str
    field: str  # the message starts with it
    values: st.SearchStrategy
    call: Callable[[object], Callable[[], object]]


def run(entry: Entry, value) -> None:
    """The call must raise InvalidArgument starting with ``field``: anything else fails the test."""
    tally = TALLY.setdefault(entry.module, Counter())
    try:
        out = entry.call(value)()
    except InvalidArgument as error:
        message = str(error)
        assert message.startswith(entry.field) or message.startswith("weights"), f"{entry.field} not named: {message}"
        tally["named"] += 1
        return
    except Exception as error:  # a raw library error: the bug this test exists for
        pytest.fail(f"{entry.module} {entry.field}={value!r}: raw {type(error).__name__}: {error}")
    tally["silent"] += 1
    pytest.fail(f"{entry.module} accepted {entry.field}={value!r} silently, returning {out!r}")


def documented(module: str, check: bool) -> None:
    """Count a documented result of ``module`` and assert it."""
    TALLY.setdefault(module, Counter())["documented"] += 1
    assert check


def print_tally(modules) -> None:
    for module, counts in sorted((m, c) for m, c in TALLY.items() if m in modules):
        print(
            f"\nmalformed {module}: {sum(counts.values())} calls, {counts['named']} named errors, "
            f"{counts['documented']} documented results, {counts['silent']} silent",
            end="",
        )
