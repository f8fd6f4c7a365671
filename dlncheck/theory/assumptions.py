"""Beyond the theory's assumptions (issue #29; docs/protocol.md, "Beyond the assumptions"): what
can still be predicted when the inputs are anisotropic (Sxx != I, aligned with the teacher or
rotated away from it), the teacher's rank exceeds the bottleneck, or the init is unbalanced.

1. The drift identity needs none of the assumptions. One step changes D_l = W_{l+1}^T W_{l+1} -
   W_l W_l^T by exactly lr^2 (G_{l+1}^T G_{l+1} - G_l G_l^T) for any loss of the product, and the
   per-sample gradient r_i x_i^T (r_i = W x_i - y_i) with its without-replacement batch mean gives
   E[D_l^SGD(T)] - D_l^GD(T) = lr^2 c_B sum_t C_l(W_t^GD) + O(lr) relative
   (:mod:`dlncheck.theory.sgd_drift`, whose moments Sxx, Syx and label terms are the data's own).
   Its tolerance (:func:`dlncheck.theory.balance_drift.sgd_drift_tolerance`) takes h = lr
   lambda_max from :func:`dlncheck.theory.sgd.truncation_tolerance`; the anisotropic inputs have
   Sxx <= I (eigenvalues in [1 / kappa, 1]), so the whitened curvature bound still bounds theirs.
2. Mode time scales (exact for inputs aligned with the teacher, Sxx = V diag(lambda) V^T,
   balanced decoupled init): the loss is 0.5 sum_k lambda_k (u_k - s_k)^2 + const, so
   du_k/dt = L lambda_k u_k^{2-2/L} (s_k - u_k): mode k runs at the whitened speed with s_k
   replaced by its input-output covariance lambda_k s_k (= sigma_k(Syx)) in the rate and s_k kept
   as its end value; its escape time scales as 1 / (lambda_k s_k^{...}). :func:`horizon_factor`
   stretches a whitened run by s_r / sigma_r(Syx) (r the teacher's rank) so the slowest mode has
   the same room to escape; for rotated inputs the modes couple and the factor is a run-length
   choice only (no prediction), stated so.
3. Learning order: where the modes decouple they are learned in the order of lambda_k s_k
   (item 2); the whitened-coordinates teacher Syx Sxx^{-1/2} (the map a network on whitened
   inputs would learn) orders them by s_k lambda_k^{1/2}. :func:`target_modes` gives both frames,
   :func:`learning_times` the times GD's map reaches half of each; which order the data follow
   where the modes couple is exploratory (reported, not asserted).
4. Bottleneck: with min(widths) = w < rank(M) and whitened inputs GD's end-to-end map can reach
   at best the rank-w truncation of M (Eckart-Young), loss 0.5 sum_{k>w} s_k^2 above the offset;
   for anisotropic inputs the best rank-w map is the rank-w truncation of Syx Sxx^{-1/2} mapped
   back by Sxx^{-1/2} (reduced-rank regression, Izenman 1975): :func:`bottleneck_loss`.
5. Matched progress. Where the modes decouple (:func:`modes_decouple`: Sxx commutes with T^T T,
   whitened or aligned inputs) the protocol's stage progress p = sum_b f_b is read in the frame of
   Syx Sxx^{-1/2} (:func:`target_coefficients`; on whitened teacher data the teacher's own frame, so
   p is measure.progress's). Where they couple a mode's coefficient is no stage of a staircase, so
   the matching uses the loss level instead (measure.progress.loss_progress: the fraction of the
   reducible loss shed, down to :func:`bottleneck_loss`), the other alignment the protocol names.
6. First-order log singular value offsets (theory.sgd item 2 from the drift of item 1, band
   theory.offset_band) beyond whitened data. The split reads D_l in each learned mode's own frame,
   which a path keeps only where the modes decouple (:func:`modes_decouple`, item 5). Its band's
   relative term h (theory.sgd.truncation_tolerance) holds while the drift stops at GD's minimum:
   the per-sample gradients r_i x_i^T vanish there only if every residual r_i = W* x_i - y_i does,
   i.e. the labels are exactly a linear map of the inputs of rank <= the narrowest width
   (:func:`noise_vanishes`: no label noise, no data-set residual, no teacher above the bottleneck).
   Otherwise the noise acts at the minimum at a constant rate and the drift grows secularly, a term
   h does not cover. Both are properties of the data and the widths, fixed before any run; the
   init's own premise is theory.split_premise's. The prediction is of the split at the minimum,
   where it is conserved: every run must have settled there by the end, its last learning time
   (:func:`learning_times`) at least :func:`settling_margin` before it (the run-length rule of the
   settled init ensembles, theory.trap.settling_margin, with item 2's rates).
"""

from __future__ import annotations

import numpy as np
import torch

from dlncheck.config.data import Problem
from dlncheck.theory.trap import settling_efolds


def _whitened_teacher(problem: Problem) -> torch.Tensor:
    """Syx Sxx^{-1/2} = T Sxx^{1/2} (Syx when whitened), float64."""
    T = problem.least_squares.double().cpu()
    return T if problem.root is None else T @ problem.root.double().cpu()


def covariance_values(problem: Problem, n: int) -> dict[str, np.ndarray]:
    """The top n singular values of Syx (the modes' rates, item 2) and of Syx Sxx^{-1/2} (item 3)."""
    Syx = problem.Syx.double().cpu()
    return {
        "Syx": torch.linalg.svdvals(Syx)[:n].numpy(),
        "whitened": torch.linalg.svdvals(_whitened_teacher(problem))[:n].numpy(),
    }


def horizon_factor(problem: Problem, teacher_values, rank: int) -> float:
    """s_r / sigma_r(Syx), at least 1: how much longer than a whitened run the slowest of the
    teacher's r modes needs (item 2; exact rate ratio for aligned inputs)."""
    s_r = float(teacher_values[rank - 1])
    sigma_r = float(covariance_values(problem, rank)["Syx"][rank - 1])
    return max(1.0, s_r / sigma_r)


def target_modes(problem: Problem) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(U', s', V') of Syx Sxx^{-1/2} (item 3): the modes of the map GD learns, in whitened
    input coordinates, with its singular values."""
    U, s, Vh = torch.linalg.svd(_whitened_teacher(problem), full_matrices=False)
    return U, s, Vh.mT


def learning_times(end_to_end: torch.Tensor, times: torch.Tensor, problem: Problem, n: int) -> np.ndarray:
    """First time a map reaches half of each target mode: m_j(t) = u'_j^T W(t) Sxx^{1/2} v'_j
    >= s'_j / 2 (item 3), for j < n; NaN where it never does. end_to_end (..., K, d_out, d_in) (leading
    axes: runs), the K checkpoints at ``times``; returns (..., n)."""
    s = target_modes(problem)[1]
    m = torch.diagonal(target_coefficients(end_to_end, problem, n), dim1=-2, dim2=-1).abs()  # (..., K, n)
    reached = m >= s[:n] / 2
    first = reached.int().argmax(-2)  # the first checkpoint reaching it (argmax returns the first maximum)
    t = times.double().cpu()[first]
    return torch.where(reached.any(-2), t, torch.nan).numpy()


def target_coefficients(end_to_end: torch.Tensor, problem: Problem, n: int) -> torch.Tensor:
    """U'^T W Sxx^{1/2} V' restricted to the top n target modes, (..., n, n), for end-to-end maps W
    (..., d_out, d_in): the mode coefficients in the frame of Syx Sxx^{-1/2} (item 3; the teacher's
    frame U^T W V on whitened teacher data), float64."""
    U, _, V = target_modes(problem)
    W = end_to_end.double().cpu()
    if problem.root is not None:
        W = W @ problem.root.double().cpu()
    return U[:, :n].mT @ W @ V[:, :n]


def modes_decouple(problem: Problem, rtol: float = 1e-9) -> bool:
    """Whether GD's modes decouple (item 5): Sxx commutes with T^T T (T the least-squares map), so
    both share an eigenbasis and a decoupled init stays decoupled (whitened inputs; anisotropic
    inputs aligned with the teacher). rtol: relative size of ||[Sxx, T^T T]||_F counted as zero
    (the float64 round-off of the data's moments, far below it)."""
    if problem.Sxx is None:  # whitened
        return True
    S, T = problem.Sxx.double().cpu(), problem.least_squares.double().cpu()
    A = T.mT @ T
    gap = torch.linalg.matrix_norm(S @ A - A @ S)
    return bool(gap <= rtol * torch.linalg.matrix_norm(S) * torch.linalg.matrix_norm(A))


def bottleneck_loss(problem: Problem, width: int) -> float:
    """Least loss of an end-to-end map of rank <= ``width`` (item 4): 0.5 sum_{k > width}
    sigma_k(Syx Sxx^{-1/2})^2 + the offset."""
    s = torch.linalg.svdvals(_whitened_teacher(problem))
    return 0.5 * float(s[width:].square().sum()) + problem.loss_offset


def noise_vanishes(problem: Problem, width: int, rtol: float = 1e-9) -> bool:
    """Whether SGD's per-sample gradient noise vanishes at GD's reachable minimum (item 6): the least
    loss of a rank <= ``width`` map (:func:`bottleneck_loss`) is zero up to ``rtol`` times the loss of
    the zero map, 0.5 ||Y||_F^2 / n (the float64 round-off of the data's moments, far below it)."""
    zero_map = 0.5 * float(problem.Y.double().square().sum()) / problem.Y.shape[1]
    return abs(bottleneck_loss(problem, width)) <= rtol * zero_map


def settling_margin(problem: Problem, n: int, depth: int) -> float:
    """Time a run needs after its last learning time to settle at the minimum (item 6): the slowest of
    the n learned modes' gap falls by theory.trap.SETTLE e-folds along item 2's flow du_k/dt = L lambda_k
    u_k^{2-2/L} (s_k - u_k): theory.trap.settling_efolds(L) / (L lambda_k s_k^{2-2/L}), the whitened
    mode's time scaled by 1 / lambda_k, with lambda_k s_k = u_k^T Syx v_k ((u_k, s_k, v_k) the modes of
    T; whitened: lambda_k = 1, theory.trap's settling_margin). Balanced layers give the slowest rate at a
    given strength (sum_l u^2 / a_l^2 >= L u^{2-2/L}, AM-GM), so it covers unbalanced ones. Where the
    modes decouple (:func:`modes_decouple`)."""
    U, s, Vh = torch.linalg.svd(problem.least_squares.double().cpu(), full_matrices=False)
    drive = torch.einsum("ik,ij,kj->k", U[:, :n], problem.Syx.double().cpu(), Vh[:n])  # lambda_k s_k
    rate = depth * drive * s[:n] ** (1 - 2 / depth)
    if not bool((rate > 0).all()):
        raise ValueError(f"n={n!r} is invalid: the top n modes of T must all be driven (u_k^T Syx v_k > 0)")
    return settling_efolds(depth) / float(rate.min())
