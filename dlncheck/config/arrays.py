"""Tensor arguments: matrices, layer lists, singular values, eps grids and rank patterns.

The tensor half of :mod:`dlncheck.config.validation`: each check returns its argument (or its
canonical form) or raises :class:`~dlncheck.config.validation.InvalidArgument` reading
``field=value is invalid: <the fix>``. Accepted tensors are real float32 or float64 (LAPACK has
no half-precision SVD on the CPU; complex values have no ordering of singular directions here),
non-empty and, unless ``values=False``, finite. Metadata checks (type, dtype, shape, device)
cost microseconds; value checks read every entry once.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from dlncheck.config.validation import MAX_DEPTH, fail, finite_float, integral

REAL_DTYPES = (torch.float64, torch.float32)
#: top-K log spectra are padded to K values: more than this is refused before any allocation
MAX_TOP_K = 2**16


def tensor(field: str, A, min_ndim: int = 0, values: bool = True) -> torch.Tensor:
    """A real float32/float64 torch tensor with at least ``min_ndim`` dimensions and one entry,
    finite when ``values``."""
    if not torch.is_tensor(A):
        fail(field, A, f"pass a torch.Tensor (got {type(A).__name__}); convert with torch.as_tensor(...)")
    if A.is_complex():
        fail(field, A, f"it is complex ({A.dtype}); pass a real tensor (A.real, or A.abs() if that is meant)")
    if A.dtype not in REAL_DTYPES:
        fix = "pass float32 or float64" + (
            " (no half-precision SVD on the CPU)" if A.is_floating_point() else " (an integer tensor is not a spectrum)"
        )
        fail(field, A, f"{fix}; got {A.dtype}: convert with .double()")
    if A.ndim < min_ndim:
        fail(field, A, f"pass a tensor with at least {min_ndim} dimension(s), got shape {tuple(A.shape)}")
    if A.numel() == 0:
        fail(field, A, f"it has no entries (shape {tuple(A.shape)}); pass at least one value along every axis")
    if values and not bool(torch.isfinite(A).all()):
        fail(field, A, "it has non-finite entries (nan or inf); check the run for divergence")
    return A


def matrix(field: str, A) -> torch.Tensor:
    """A finite, non-empty real (..., m, n) tensor."""
    return tensor(field, A, min_ndim=2)


def as_matrix(field: str, value, dtype=torch.float64, max_abs: float | None = None) -> torch.Tensor:
    """A finite, non-empty, real 2-D matrix from a tensor or nested list, converted to ``dtype``;
    entries above ``max_abs`` in magnitude are refused."""
    if isinstance(value, torch.Tensor) and value.is_complex():
        tensor(field, value)  # names the complex dtype
    try:
        A = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        fail(field, value, "pass a 2-D matrix (a tensor or a nested list of numbers)")
    if A.is_complex() or A.dtype == torch.bool or A.ndim != 2:
        fail(field, value, f"pass a real 2-D matrix, got {A.dtype} of shape {tuple(A.shape)}")
    A = matrix(field, A.to(dtype))
    if max_abs is not None and float(A.abs().max()) > max_abs:
        fail(field, value, f"entries above {max_abs:.3g} in magnitude overflow {dtype} downstream; rescale it")
    return A


def _same_kind(field: str, tensors: list[torch.Tensor]) -> None:
    """One dtype and device for all, and leading (batch) shapes that broadcast."""
    for l, W in enumerate(tensors[1:], start=1):
        if W.dtype != tensors[0].dtype or W.device != tensors[0].device:
            fail(
                f"{field}[{l}]",
                W,
                f"every tensor must share {field}[0]'s dtype and device ({tensors[0].dtype} on {tensors[0].device}), "
                f"got {W.dtype} on {W.device}; convert with .to({field}[0])",
            )
    try:
        torch.broadcast_shapes(*(W.shape[:-2] for W in tensors))
    except RuntimeError:
        fail(
            field,
            [tuple(W.shape) for W in tensors],
            "the leading (batch) shapes of the layers do not broadcast; give every layer the same batch axes",
        )


def layers(field: str, weights, values: bool = True) -> list[torch.Tensor]:
    """A layer list [W_1, ..., W_L] of real (..., d_l, d_{l-1}) tensors of one dtype and device,
    whose batch shapes broadcast and whose shapes compose (W_{l+1} maps from d_l); never one
    stacked tensor. ``values=False`` checks metadata only (inside torch.func transforms) and
    allows empty blocks."""
    if torch.is_tensor(weights) or not isinstance(weights, (list, tuple)):
        fail(
            field,
            weights,
            "pass a list or tuple of layer tensors [W_1, ..., W_L]; a stacked "
            "tensor would be read as a chain of its slices: use list(tensor) if that is meant",
        )
    if len(weights) == 0:
        fail(field, weights, "pass at least one layer tensor (..., d_l, d_{l-1})")
    if len(weights) > MAX_DEPTH:
        fail(field, f"{len(weights)} layers", f"at most MAX_DEPTH={MAX_DEPTH} layers are accepted")
    if values:
        weights = [matrix(f"{field}[{l}]", W) for l, W in enumerate(weights)]
    else:
        for l, W in enumerate(weights):
            if not torch.is_tensor(W) or W.ndim < 2 or W.is_complex() or not W.is_floating_point():
                fail(f"{field}[{l}]", W, "pass a real floating-point tensor of shape (..., d_l, d_{l-1})")
    _same_kind(field, list(weights))
    for k in range(1, len(weights)):
        below, above = weights[k - 1], weights[k]
        if above.shape[-1] != below.shape[-2]:
            fail(
                field,
                [tuple(W.shape) for W in weights],
                f"the layers do not compose: {field}[{k}] has shape {tuple(above.shape)} and maps from "
                f"{above.shape[-1]} dims, but {field}[{k - 1}] outputs {below.shape[-2]}; layer l must have "
                "shape (..., d_l, d_{l-1})",
            )
    return list(weights)


def finite_products(field: str, products) -> None:
    """Products (key, P) of valid layers that overflowed (inf or nan) are refused, naming the product."""
    for key, P in products:
        if not bool(torch.isfinite(P).all()):
            fail(
                field,
                f"<layers whose product {key} has shape {tuple(P.shape)}>",
                f"the product {key} overflows {P.dtype} (non-finite entries); rescale the layers",
            )


def svals(field: str, s) -> torch.Tensor:
    """Singular values (..., k), k >= 1: finite, non-negative, sorted descending along the last axis."""
    tensor(field, s, min_ndim=1)
    if bool((s < 0).any()):
        fail(field, s, "singular values are >= 0; pass spectra.singular_values(A)")
    if s.shape[-1] > 1 and bool((s[..., 1:] > s[..., :-1]).any()):
        fail(field, s, "sort singular values in descending order (as torch.linalg.svdvals returns them)")
    return s


def svals_by_product(field: str, values, L) -> tuple[dict, int]:
    """A non-empty dict {(i, j): singular values} keyed by 1-based 1 <= i <= j <= L, as
    product_singular_values returns it, and L itself."""
    L = integral("L", L, min=1, max=MAX_DEPTH)
    if not isinstance(values, dict) or not values:
        fail(field, values, "pass the dict spectra.product_singular_values(weights) returns")
    for key, s in values.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(i, int) for i in key)):
            fail(field, key, "keys are 1-based (i, j) pairs of ints")
        if not 1 <= key[0] <= key[1] <= L:
            fail(field, key, f"keys (i, j) satisfy 1 <= i <= j <= L={L}")
        svals(f"{field}[{key}]", s)
    batch = next(iter(values.values())).shape[:-1]
    for key, s in values.items():
        if s.shape[:-1] != batch:
            fail(f"{field}[{key}]", tuple(s.shape), f"every product's spectra share one batch shape {tuple(batch)}")
    return values, L


def eps(field: str, value, shape: torch.Size | None = None):
    """A relative threshold in (0, 1): a number, or a non-empty list/tensor of them whose shape
    broadcasts against ``shape`` (the batch of a spectrum)."""
    if not torch.is_tensor(value) and not isinstance(value, (list, tuple)):
        if not _in_open_unit(value):
            _bad_eps(field, value)
        return value
    try:
        e = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        _bad_eps(field, value)
    if e.is_complex() or not (e.is_floating_point() or e.dtype in (torch.int32, torch.int64)):
        _bad_eps(field, value)
    if e.numel() == 0:
        fail(field, value, "pass at least one threshold (an empty grid gives an empty result)")
    e = e.to(torch.float64)
    if not bool(((e > 0) & (e < 1)).all()):
        _bad_eps(field, value)
    broadcast(field, e.shape, shape)
    return value


def _in_open_unit(value) -> bool:
    if isinstance(value, (bool, np.bool_)):  # a bool is an int, not a threshold
        return False
    return isinstance(value, numbers.Real) and 0 < float(value) < 1


def _bad_eps(field: str, value):
    fail(field, value, "eps lies in (0, 1): a relative threshold sigma_m > eps * sigma_1 (e.g. eps=1e-5)")


def floor(field: str, value, shape: torch.Size | None = None):
    """An absolute floor >= 0: a number, or a non-empty real tensor that broadcasts against ``shape``."""
    if not torch.is_tensor(value):
        return finite_float(field, value, min=0.0)
    if value.is_complex() or value.dtype == torch.bool or value.numel() == 0:
        fail(field, value, "pass a non-empty real tensor of floors >= 0 (absolute singular-value thresholds)")
    if not bool(torch.isfinite(value).all() & (value >= 0).all()):
        fail(field, value, "pass finite floors >= 0 (absolute singular-value thresholds)")
    broadcast(field, value.shape, shape)
    return value


def broadcast(field: str, shape, against: torch.Size | None, what: str = "the spectra's batch shape"):
    """``shape`` must broadcast against ``against`` (skipped when None)."""
    if against is None:
        return
    try:
        torch.broadcast_shapes(tuple(shape), tuple(against))
    except RuntimeError:
        fail(field, tuple(shape), f"its shape does not broadcast against {what} {tuple(against)}")


def rank_pattern(field: str, r) -> torch.Tensor:
    """A rank pattern (..., L, L): a non-empty tensor of finite ranks >= 0 (int64, or float for
    mean patterns), L <= MAX_DEPTH."""
    if not torch.is_tensor(r) or r.is_complex() or r.dtype == torch.bool:
        fail(field, r, "pass an (..., L, L) rank pattern tensor (spectra.rank_pattern)")
    if r.ndim < 2 or r.shape[-1] != r.shape[-2] or r.numel() == 0:
        fail(field, tuple(r.shape), "pass a non-empty (..., L, L) rank pattern (spectra.rank_pattern)")
    if r.shape[-1] > MAX_DEPTH:
        fail(field, tuple(r.shape), f"L is at most MAX_DEPTH={MAX_DEPTH}")
    if r.is_floating_point() and not bool(torch.isfinite(r).all()):
        fail(field, r, "ranks are finite (a nan rank comes from a non-finite spectrum upstream)")
    if bool((r < 0).any()):
        fail(field, r, "ranks are >= 0")
    return r


def top_k(field: str, K) -> int:
    """K >= 1 top singular values, at most MAX_TOP_K (the result is padded to K)."""
    return integral(field, K, min=1, max=MAX_TOP_K, why=" (the top-K array is padded to K: ask for at most min(m, n))")
