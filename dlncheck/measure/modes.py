"""Mode coefficients: the weights in the teacher's singular bases, w_ab = u_a^T W v_b, their
cross energy, off-diagonal decay, crossing times and the initial mode strength
(protocol "Mode decoupling"; Saxe et al. 2014, Atanasov et al. 2022).

Pure functions of torch tensors, batched over leading axes; a time axis is the last batch
axis ``(..., K)``.
"""

from __future__ import annotations

import math

import torch

from dlncheck.measure.balance import check_depth, frobenius
from dlncheck.measure.events import first_time
from dlncheck.measure.stats import safe_ratio
from dlncheck.spectra import Weights


def complete_basis(U: torch.Tensor) -> torch.Tensor:
    """Orthonormal d x d basis whose first k columns are the orthonormal columns of U (d, k).

    Complete QR (Householder) of U; column signs fixed so that Q[:, :k] = U exactly in
    exact arithmetic. The completion of the null space is deterministic.
    """
    d, k = U.shape[-2], U.shape[-1]
    if k > d:
        raise ValueError(f"U must have at most as many columns as rows, got shape {tuple(U.shape)}")
    Q, R = torch.linalg.qr(U, mode="complete")
    sign = torch.sign(torch.diagonal(R[..., :k, :k], dim1=-2, dim2=-1))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    return torch.cat([Q[..., :, :k] * sign.unsqueeze(-2), Q[..., :, k:]], dim=-1)


def mode_coefficients(W: torch.Tensor, U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """w_ab = u_a^T W v_b in the teacher's full singular bases: U^T W V, (..., d_out, d_in).

    U, V may be thin (teacher's nonzero modes only); they are completed to full bases.
    """
    if U.shape[-2] != W.shape[-2] or V.shape[-2] != W.shape[-1]:
        raise ValueError(
            f"bases do not match W: W is {tuple(W.shape[-2:])}, U is "
            f"{tuple(U.shape)}, V is {tuple(V.shape)}; pass the teacher's U (d_out, k) "
            "and V (d_in, k)"
        )
    U, V = complete_basis(U).to(W), complete_basis(V).to(W)
    return U.transpose(-1, -2) @ W @ V


def _block_mask(s: torch.Tensor, n_rows: int, n_cols: int, rtol: float) -> torch.Tensor:
    """(n_rows, n_cols) bool: True where (a, b) lie in one degenerate block of s (a != b incl.)."""
    n = s.shape[-1]
    same = torch.zeros(n_rows, n_cols, dtype=torch.bool, device=s.device)
    a, b = min(n_rows, n), min(n_cols, n)
    close = (s[:a, None] - s[None, :b]).abs() <= rtol * s[0]
    same[:a, :b] = close & (s[:a, None] > 0)
    return same | torch.eye(n_rows, n_cols, dtype=torch.bool, device=s.device)


def degenerate_blocks(s: torch.Tensor, rtol: float = 1e-9) -> list[list[int]]:
    """Groups of 0-based indices of nonzero singular values equal within rtol * s_1."""
    blocks: list[list[int]] = []
    for a, value in enumerate(s.tolist()):
        if value <= 0:
            break
        if blocks and abs(s[blocks[-1][0]].item() - value) <= rtol * s[0].item():
            blocks[-1].append(a)
        else:
            blocks.append([a])
    return blocks


def cross_energy(w: torch.Tensor) -> dict[str, torch.Tensor]:
    """E_cross = sum_{a != b} w_ab^2, E_tot = sum_ab w_ab^2 and their ratio, each (...)."""
    total = w.square().sum((-2, -1))
    diag = torch.diagonal(w, dim1=-2, dim2=-1).square().sum(-1)
    cross = total - diag
    return {"cross": cross, "total": total, "ratio": safe_ratio(cross, total)}


def row_offdiag(w: torch.Tensor, s: torch.Tensor, rtol: float = 1e-9) -> dict[str, torch.Tensor]:
    """Per teacher mode a (rows a < #nonzero s): off-diagonal content of row a of w.

    ``max``: max_{b not in block(a)} |w_ab| (the protocol's absolute statistic);
    ``rho``: ||w_{a, b not in block(a)}|| / ||w_{a,:}||, the scale-free version.
    Pairs inside a degenerate block of s have no preferred basis and are excluded
    (block(a) = {a} for a simple singular value). Shapes (..., n_modes).
    """
    n_modes = int((s > 0).sum())
    rows = w[..., :n_modes, :]
    off = ~_block_mask(s, n_modes, w.shape[-1], rtol)
    off_part = rows * off
    return {
        "max": off_part.abs().amax(-1),
        "rho": safe_ratio(torch.linalg.vector_norm(off_part, dim=-1), torch.linalg.vector_norm(rows, dim=-1)),
    }


def crossing_times(
    w: torch.Tensor,
    s: torch.Tensor,
    times: torch.Tensor,
    *,
    eps_rho: float = 0.1,
    eps_abs: float | None = None,
    c: float = 0.5,
) -> dict[str, torch.Tensor]:
    """t_cross(a) and t_diag(a) from mode coefficients w (..., K, d_out, d_in).

    t_diag(a)  = inf{t : |w_aa(t)| >= c s_a}                            (protocol, c = 0.5)
    t_cross(a) = inf{t : rho_a(t) <= eps_rho}                            (scale-free)
    t_cross_abs(a) = inf{t : max_{b != a} |w_ab(t)| <= eps_abs}          (protocol's absolute
                 form, only if eps_abs is given). Shapes (..., n_modes).
    """
    if not 0 < c < 1:
        raise ValueError(f"c must lie in (0, 1), got {c}; the protocol uses c = 0.5")
    n = int((s > 0).sum())
    off = row_offdiag(w, s)
    diag = torch.diagonal(w, dim1=-2, dim2=-1)[..., :n].abs()
    times = torch.as_tensor(times, dtype=torch.float64, device=w.device).unsqueeze(-2)  # (..., 1, K)

    def first(cond: torch.Tensor) -> torch.Tensor:  # over K
        return first_time(cond.movedim(-2, -1), times)

    out = {"t_diag": first(diag >= c * s[:n].to(w)), "t_cross": first(off["rho"] <= eps_rho)}
    if eps_abs is not None:
        out["t_cross_abs"] = first(off["max"] <= eps_abs)
    return out


def initial_mode_strength(weights: Weights, U: torch.Tensor, V: torch.Tensor, n_modes: int) -> torch.Tensor:
    """Effective initial strength u0(a) of teacher mode a from the initial layers, (..., n_modes).

    u0(a) = ||W_L^T u_a|| * prod_{l=2}^{L-1} ||W_l||_F / sqrt(min(d_l, d_{l-1})) * ||W_1 v_a||:
    the end layers' projections on the mode's input/output directions times the middle
    layers' rms singular value, i.e. the mode strength a balanced, aligned network with the
    same projections would start from (silent alignment during the plateau, Atanasov et
    al. 2022). For L = 2 it is ||W_2^T u_a|| ||W_1 v_a||.
    """
    check_depth(weights, "initial_mode_strength")
    first = torch.linalg.vector_norm(weights[0] @ V[:, :n_modes].to(weights[0]), dim=-2)
    last = torch.linalg.vector_norm(weights[-1].transpose(-1, -2) @ U[:, :n_modes].to(weights[0]), dim=-2)
    middle = torch.ones_like(first[..., :1])
    for W in weights[1:-1]:
        middle = middle * rms_singular_value(W).unsqueeze(-1)
    return first * middle * last


def rms_singular_value(W: torch.Tensor) -> torch.Tensor:
    """Root-mean-square singular value ||W||_F / sqrt(min(m, n)), (...)."""
    return frobenius(W) / min(W.shape[-2:]) ** 0.5


def rho_upper_bound(W: torch.Tensor, M: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Guaranteed rho_a <= delta / (s_a - delta), delta = ||W - M||_F (inf where s_a <= delta).

    Row a of U^T M V is s_a e_a, so ||off part of row a|| <= delta and ||row a|| >= s_a - delta.
    """
    delta = frobenius(W - M.to(W)).unsqueeze(-1)
    s = s[s > 0].to(W)
    return torch.where(s > delta, delta / (s - delta).clamp(min=1e-300), torch.full_like(s - delta, math.inf))
