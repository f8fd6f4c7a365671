"""Malformed arguments to every public function of dlncheck.spectra (issue #30): empty, nan, inf,
half, complex, integer, wrong rank, layers whose batch shapes or dtypes differ, products that
overflow, sizes that would exhaust memory. Each call raises an InvalidArgument whose message starts
with the argument's name (never a raw IndexError, LinAlgError or RuntimeError, never a silent empty
or nan result), or returns its documented result. Strategies: tests/malformed.py."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from malformed import (
    BAD_ATOL,
    BAD_EPS,
    BAD_PATTERN,
    BAD_SVALS,
    BAD_SVALS_DICT,
    F64,
    FUZZ,
    NAN_INF,
    NF,
    NOT_NUMBER,
    SV,
    W3,
    Z0,
    A,
    Entry,
    M,
    bad_int,
    bad_positive,
    documented,
    finite,
    malformed,
    malformed_layers,
    print_tally,
    rand,
    run,
    with_entry,
)

from dlncheck import spectra
from dlncheck.config.validation import InvalidArgument
from dlncheck.saddles import NormalForm, certify

WB = [w.expand(2, *w.shape) for w in W3]  # a batch of 2: a 3-value eps or atol grid does not broadcast
ENTRIES = [
    Entry("spectra", "A", malformed(A), lambda v: lambda: spectra.singular_values(v)),
    Entry("spectra", "A", malformed(A), lambda v: lambda: spectra.numerical_rank(v, 1e-5)),
    Entry("spectra", "A", malformed(A), lambda v: lambda: spectra.effective_rank(v)),
    Entry("spectra", "A", malformed(A), lambda v: lambda: spectra.participation_ratio(v)),
    Entry("spectra", "A", malformed(A), lambda v: lambda: spectra.log_spectrum(v, 2)),
    Entry("spectra", "eps", BAD_EPS, lambda v: lambda: spectra.numerical_rank(A.expand(2, 4, 3), v)),
    Entry("spectra", "eps", BAD_EPS, lambda v: lambda: spectra.numerical_rank_from_svals(SV.expand(2, 3), v)),
    Entry("spectra", "eps", BAD_EPS, lambda v: lambda: spectra.rank_pattern(WB, v)),
    Entry("spectra", "eps", BAD_EPS, lambda v: lambda: spectra.rank_patterns(WB, v)),
    Entry("spectra", "atol", BAD_ATOL, lambda v: lambda: spectra.numerical_rank(A.expand(2, 4, 3), 1e-5, atol=v)),
    Entry("spectra", "atol", BAD_ATOL, lambda v: lambda: spectra.rank_pattern(WB, 1e-5, atol=v)),
    Entry("spectra", "svals", BAD_SVALS, lambda v: lambda: spectra.numerical_rank_from_svals(v, 1e-5)),
    Entry("spectra", "svals", BAD_SVALS, lambda v: lambda: spectra.effective_rank_from_svals(v)),
    Entry("spectra", "svals", BAD_SVALS, lambda v: lambda: spectra.participation_ratio_from_svals(v)),
    Entry("spectra", "svals", BAD_SVALS, lambda v: lambda: spectra.singular_gap(v, 1)),
    Entry("spectra", "svals", BAD_SVALS, lambda v: lambda: spectra.log_spectrum_from_svals(v, 2)),
    Entry("spectra", "svals", BAD_SVALS_DICT, lambda v: lambda: spectra.rank_patterns_from_svals(v, 2, 1e-5)),
    Entry("spectra", "svals", BAD_SVALS_DICT, lambda v: lambda: spectra.log_spectra_from_svals(v, 2, 2)),
    Entry("spectra", "weights", malformed_layers(W3), lambda v: lambda: spectra.partial_products(v)),
    Entry("spectra", "weights", malformed_layers(W3), lambda v: lambda: spectra.end_to_end(v)),
    Entry("spectra", "weights", malformed_layers(W3), lambda v: lambda: spectra.product_singular_values(v)),
    Entry("spectra", "weights", malformed_layers(W3), lambda v: lambda: spectra.prefix_suffix_products(v)),
    Entry("spectra", "weights", malformed_layers(W3), lambda v: lambda: spectra.rank_pattern(v, 1e-5)),
    Entry("spectra", "weights", malformed_layers(W3), lambda v: lambda: spectra.rank_patterns(v, 1e-5)),
    Entry("spectra", "weights", malformed_layers(W3), lambda v: lambda: spectra.log_spectra(v, 2)),
    Entry(
        "spectra",
        "weights",
        malformed_layers(W3, values=False),
        lambda v: lambda: spectra.chain_product(v),  # metadata only (runs in torch.func transforms)
    ),
    Entry("spectra", "K", bad_int(1, 2**16), lambda v: lambda: spectra.log_spectrum(A, v)),
    Entry("spectra", "K", bad_int(1, 2**16), lambda v: lambda: spectra.log_spectra(W3, v)),
    Entry("spectra", "delta", bad_positive(), lambda v: lambda: spectra.log_spectrum(A, 2, delta=v)),
    Entry(
        "spectra",
        "normalized",
        st.sampled_from([1, "yes", None]),
        lambda v: lambda: spectra.log_spectrum(A, 2, normalized=v),
    ),
    Entry(
        "spectra",
        "r",
        st.one_of(bad_int(0, 3), st.sampled_from([torch.tensor([]), torch.tensor([1, 2, 3]), torch.tensor(0.5)])),
        lambda v: lambda: spectra.singular_gap(SV.expand(2, 3), v),
    ),
    Entry("spectra", "r", BAD_PATTERN, lambda v: lambda: spectra.multiplicity_pattern(v)),
    Entry(
        "spectra",
        "gap_threshold",
        st.one_of(NAN_INF, st.floats(max_value=1.0), NOT_NUMBER),
        lambda v: lambda: spectra.rank_patterns(W3, 1e-5, gap_threshold=v),
    ),
    Entry("spectra", "L", bad_int(1, 128), lambda v: lambda: spectra.upper_mask(v)),
    Entry("spectra", "device", st.sampled_from(["tpu", 3, "meta"]), lambda v: lambda: spectra.upper_mask(2, v)),
    Entry(
        "spectra",
        "values",
        st.sampled_from(
            [
                {},
                None,
                {(0, 1): torch.ones(1)},
                {(1, 3): torch.ones(1)},
                {(1, 1): 1.0},
                {(1, 1): torch.ones(2), (1, 2): torch.ones(3)},
            ]
        ),
        lambda v: lambda: spectra.pattern_from_products(v, 2),
    ),
]


@pytest.fixture(scope="module", autouse=True)
def report_tally():
    yield
    print_tally(("spectra",))


@pytest.mark.parametrize("entry", ENTRIES, ids=[f"{e.module}-{e.field}-{i}" for i, e in enumerate(ENTRIES)])
@FUZZ
@given(data=st.data())
def test_malformed_inputs_raise_an_error_naming_the_argument(entry, data):
    run(entry, data.draw(entry.values, label=entry.field))


def test_documented_results_of_unusual_but_valid_inputs():
    """Inputs that are odd but valid give their documented result, finite."""
    huge = A * 1e300  # SVD scales internally: finite singular values; ranks and ratios scale-invariant
    documented("spectra", finite(spectra.singular_values(huge)))
    documented("spectra", float(spectra.effective_rank(huge)) == pytest.approx(float(spectra.effective_rank(A))))
    documented(
        "spectra", float(spectra.participation_ratio(huge)) == pytest.approx(float(spectra.participation_ratio(A)))
    )
    # layers whose batch shapes differ but broadcast: products over the common batch
    r = spectra.rank_pattern([W3[0], W3[1].expand(5, 4, 3), W3[2]], 1e-5)
    documented("spectra", r.shape == (5, 3, 3) and torch.equal(r[0], spectra.rank_pattern(W3, 1e-5)))
    # K above min(m, n) pads with log(delta); an empty chain is the identity the caller knows
    logs = spectra.log_spectrum(A, 5, delta=1e-30)
    documented("spectra", bool((logs[3:] == math.log(1e-30)).all()))
    documented("spectra", spectra.chain_product([]) is None)
    # chain_product checks metadata only (it runs inside torch.func transforms): nan propagates
    documented("spectra", bool(torch.isnan(spectra.chain_product([with_entry(math.nan), A.mT])).any()))


def test_issue_calls_each_raise_a_named_error():
    """The calls of issue #30: 11 accepted silently, 26 raw library errors before; each named now."""
    half, empty = A.half(), torch.empty(0, 3, dtype=F64)
    batch = [rand(2, 3, 2), rand(5, 4, 3), rand(2, 2, 4)]
    dtypes = [W3[0], W3[1].float(), W3[2]]
    calls = {
        "numerical_rank eps=[]": (lambda: spectra.numerical_rank(A, []), "eps"),
        "numerical_rank eps=tensor([])": (lambda: spectra.numerical_rank(A, torch.tensor([])), "eps"),
        "rank_pattern eps=[]": (lambda: spectra.rank_pattern(W3, []), "eps"),
        "rank_pattern eps=tensor([])": (lambda: spectra.rank_pattern(W3, torch.tensor([])), "eps"),
        "from_svals eps=[]": (lambda: spectra.numerical_rank_from_svals(SV, []), "eps"),
        "from_svals eps=tensor([])": (lambda: spectra.numerical_rank_from_svals(SV, torch.tensor([])), "eps"),
        "multiplicity nan": (lambda: spectra.multiplicity_pattern(torch.full((3, 3), math.nan)), "r"),
        "effective rank empty": (lambda: spectra.effective_rank_from_svals(torch.empty(0, dtype=F64)), "svals"),
        "participation empty": (lambda: spectra.participation_ratio_from_svals(torch.empty(0, dtype=F64)), "svals"),
        "NormalForm complex": (lambda: NormalForm(M.to(torch.complex128), [0], [3, 4, 3]), "M"),
        "NormalForm 1e300": (lambda: NormalForm(M * 1e300, [0], [3, 4, 3]), "M"),
        "singular_values half": (lambda: spectra.singular_values(half), "A"),
        "numerical_rank half": (lambda: spectra.numerical_rank(half, 1e-5), "A"),
        "effective_rank half": (lambda: spectra.effective_rank(half), "A"),
        "participation half": (lambda: spectra.participation_ratio(half), "A"),
        "log_spectrum half": (lambda: spectra.log_spectrum(half, 2), "A"),
        "rank_pattern half": (lambda: spectra.rank_pattern([w.half() for w in W3], 1e-5), "weights"),
        "log_spectra half": (lambda: spectra.log_spectra([w.half() for w in W3], 2), "weights"),
        "NormalForm half": (lambda: NormalForm(M, [0], [3, 4, 3], dtype=torch.float16), "dtype"),
        "singular_values empty": (lambda: spectra.singular_values(empty), "A"),
        "numerical_rank empty": (lambda: spectra.numerical_rank(empty, 1e-5), "A"),
        "effective_rank empty": (lambda: spectra.effective_rank(empty), "A"),
        "log_spectrum empty": (lambda: spectra.log_spectrum(empty, 2), "A"),
        "rank_pattern empty": (lambda: spectra.rank_pattern([empty.mT, W3[1]], 1e-5), "weights"),
        "from_svals empty": (lambda: spectra.numerical_rank_from_svals(torch.empty(0, dtype=F64), 1e-5), "svals"),
        "singular_gap empty": (lambda: spectra.singular_gap(torch.empty(0, dtype=F64), 0), "svals"),
        "partial_products batch": (lambda: spectra.partial_products(batch), "weights"),
        "end_to_end batch": (lambda: spectra.end_to_end(batch), "weights"),
        "rank_pattern batch": (lambda: spectra.rank_pattern(batch, 1e-5), "weights"),
        "partial_products dtype": (lambda: spectra.partial_products(dtypes), "weights"),
        "end_to_end dtype": (lambda: spectra.end_to_end(dtypes), "weights"),
        "rank_pattern dtype": (lambda: spectra.rank_pattern(dtypes, 1e-5), "weights"),
        "log_spectrum K=1e12": (lambda: spectra.log_spectrum(A, 10**12), "K"),
        "log_spectrum K=1e12 float": (lambda: spectra.log_spectrum(A, 1e12), "K"),
        "certify half": (lambda: certify([w[0].half() for w in NF.weights(Z0)], M), "weights"),
        "multiplicity empty": (lambda: spectra.multiplicity_pattern(torch.empty(0, 0)), "r"),
        "rank_patterns empty dict": (lambda: spectra.rank_patterns_from_svals({}, 2, 1e-5), "svals"),
    }
    for name, (call, field) in calls.items():
        with pytest.raises(InvalidArgument, match=f"^{field}") as info:
            call()
        assert " is invalid: " in str(info.value), name
    print(f"\nissue #30 calls: {len(calls)}, named errors: {len(calls)}")
    assert len(calls) == 37
