"""Theory oracle: the kind of a normal-form critical point from its structure alone (no Hessian).

Rules (population loss, S the learned set, Z a critical point: E(Z) = 0):

1. "minimum" if the stratum loss equals the global minimum (Eckart-Young; Kawaguchi, NeurIPS 2016:
   no spurious local minima).
2. "strict" if S is not a top-r set: rotating a learned direction u_j into a larger unlearned u_k
   along the signal path (layers 1 and L) changes the loss by (s_j^2 - s_k^2) t^2 < 0 (second order).
   For depth 2 every non-global critical point is a strict saddle (Baldi & Hornik 1989).
3. S top-r: the residual path must open an unlearned direction. Perturbing two residual blocks
   a < b changes tr(sigma mu) at second order by tr(K X_b N X_a) with
       K = Z_{a-1..1} sigma Z_{L..b+1},   N = Z_{b-1..a+1}   (empty products = identity),
   and the loss by 0.5||first-order change||^2 - tr(K X_b N X_a). If one of X_a, X_b can be chosen with
   zero first-order effect while still coupling, scaling it gives a negative second derivative:
       strict  <=>  some pair (a, b) has K != 0 and
                    rank(Z_{L..a+1}) < rank(N)   or   rank(Z_{b-1..1}) < rank(N).
   Otherwise at least three blocks must move together (third-order escape; e.g. the origin for
   L >= 3) and the Hessian is PSD: "non-strict". This is the normal-form reading of the rank
   conditions on partial products in Achour, Malgouyres & Gerchinovitz, "The loss landscape of deep
   linear neural networks: a second-order analysis", JMLR 25 (2024). The tests check it against the
   dense Hessian on every zero-block pattern of small depth.

Numerical ranks and "K != 0" are read at relative tolerance `tol` (default 1e-6) with an absolute floor:
a rank counts singular values > max(tol s_1, tol), and K counts as zero when
||K||_2 <= tol max(||sigma||_2 prod ||Z||_2, ||sigma||_2) (its factors' norms, floored like the ranks, so a
block the ranks read as zero, e.g. a pinned block polished to 1e-37, cannot make K "non-zero" on its own).
Exact samples have exact zeros, polished SGLD samples have E <~ 1e-20, i.e. residual zeros ~1e-10 relative.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dlncheck.saddles.normal_form import NormalForm
from dlncheck.spectra import chain_product, numerical_rank


@dataclass(frozen=True)
class Prediction:
    kind: str  # "strict" | "non-strict" | "minimum"
    reason: str
    open_pairs: tuple  # residual pairs (a, b), 1-based, that give a second-order escape
    escape_order: int | None  # 2: two blocks suffice; 3: three or more needed; None: not a saddle path


def _rank(A: torch.Tensor | None, tol: float, dim: int = 0) -> int:
    """Numerical rank at relative tolerance tol; an empty product (None) is the identity of size dim."""
    if A is None:
        return dim
    if A.numel() == 0:
        return 0
    return int(numerical_rank(A, tol, atol=tol))


def open_pairs(nf: NormalForm, Z, tol: float = 1e-6) -> list[tuple[int, int]]:
    """Pairs (a, b), a < b, of residual blocks whose joint perturbation descends at second order."""
    nf.check(Z)
    Z, L, r, d = list(Z), nf.L, nf.r, nf.widths
    scale = float(torch.linalg.matrix_norm(nf.sigma, ord=2)) if nf.sigma.numel() else 0.0
    pairs = []
    for a in range(1, L):
        for b in range(a + 1, L + 1):
            left, right = chain_product(Z[: a - 1]), chain_product(Z[b:])
            K = nf.sigma if left is None else left @ nf.sigma
            K = K if right is None else K @ right
            zs = [torch.linalg.matrix_norm(z, ord=2) for z in Z[: a - 1] + Z[b:]]
            k_scale = scale * float(torch.stack(zs).prod()) if zs else scale
            if K.numel() == 0 or float(torch.linalg.matrix_norm(K, ord=2)) <= tol * max(k_scale, scale, 1e-300):
                continue
            rank_N = _rank(chain_product(Z[a : b - 1]), tol, d[a] - r)
            if _rank(chain_product(Z[a:]), tol) < rank_N or _rank(chain_product(Z[: b - 1]), tol) < rank_N:
                pairs.append((a, b))
    return pairs


def oracle_kind(nf: NormalForm, Z, tol: float = 1e-6) -> Prediction:
    """Predicted kind of the critical point weights(Z) (Z: one sample, blocks without chain axis)."""
    if nf.is_global_minimum:
        return Prediction("minimum", "stratum loss equals the global minimum (Eckart-Young)", (), None)
    pairs = tuple(open_pairs(nf, Z, tol))
    if not nf.is_top:
        return Prediction(
            "strict",
            "S is not a top-r set: swap a learned direction for a larger unlearned one "
            "through the signal path (second order)",
            pairs,
            2,
        )
    if pairs:
        return Prediction("strict", f"residual blocks {pairs[0]} open an unlearned direction at second order", pairs, 2)
    return Prediction(
        "non-strict",
        "S is top-r and every residual escape needs >= 3 blocks moved together (third-order escape): PSD Hessian",
        (),
        3,
    )
