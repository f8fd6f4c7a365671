"""Run-to-run spread of SGD around the GD path: the linear-noise approximation (LNA) with the
engine's epoch-reshuffled minibatches. The suite's own derivation, not a published result.

Setting (the engine's, :mod:`dlncheck.engine._batches`): whitened inputs X (d, n) with X X^T / n = I,
noise-free labels Y = M X, loss 0.5 ||W - M||^2, W = W_L ... W_1; each epoch a fresh uniform
permutation of the n samples cut into m = n // B consecutive batches of B (remainder dropped).

1. Noise. SGD's step is GD's step plus xi_k = -lr sum_i a_ki g_i(theta_k), g_i the per-sample
   gradient (layer l: A_l^T r_i x_i^T P_l^T, r_i = (W - M) x_i, A_l the layers above l, P_l those
   below) and a_ki = 1[i in batch k] / B - 1/n (zero mean: P(i in batch k) = B / n).
2. Linearisation. With theta_k^SGD = theta_k^GD + delta_k and the noise taken at the GD point,
   delta_{k+1} = J_k delta_k + xi_k, J_k = I - lr H(theta_k^GD) (first order in the noise; the
   neglected terms are H's change along delta and xi's change along delta, of relative order
   |delta| / |theta|, and the second-order drift that moves the mean: theory.sgd item 1). For any
   linear read-out y = c^T theta at step T, y^SGD - y^GD = sum_k lambda_{k+1}^T xi_k with the adjoint
   lambda_T = c, lambda_k = J_k^T lambda_{k+1} = lambda_{k+1} - lr H_k lambda_{k+1}, so
       y^SGD - y^GD = -lr sum_k sum_i a_ki z_ki,   z_ki = lambda_{k+1}^T g_i(theta_k)
                                                      = x_i^T E_k^T (J_W(theta_k) lambda_{k+1}) x_i,
   E_k = W_k - M and J_W the tangent map of the product. Read-outs used: the entries of the
   end-to-end map in GD's own singular frame at T, u_a^T W v_b (a, b <= r); the diagonal a = b is
   the mode strength sigma_a(W) to first order (simple singular values).
3. Reshuffling. Within one epoch, sum_k sum_i 1[i in batch k] z_ki / B = sum_i c(i, pi(i)) with pi a
   uniform permutation of positions and c(i, p) = z_{k(p), i} / B (k(p) = p // B; 0 for a dropped
   position or a step after T). Hoeffding's combinatorial theorem (Hoeffding 1951, Ann. Math. Stat.
   22, Thm 2) gives Var = sum_{i,p} d(i,p)^2 / (n - 1), d the doubly centred c; with cross terms for
   two read-outs, and written in per-step sums (:func:`path_covariance`):
       (n - 1) Cov_e = (1/B) sum_{k,i} z z' - (1/n) sum_i Z_i Z'_i - (1/(n B)) sum_k zeta_k zeta'_k
                       + (1/n^2) (sum z)(sum z'),
   Z_i = sum_k z_ki, zeta_k = sum_i z_ki (sums over the epoch's steps). Epochs use independent
   permutations, so Cov(y(T)) = lr^2 sum_e Cov_e. When z_ki does not depend on k within an epoch
   (a frozen path) the epoch's noise sums to zero and Cov_e = 0: the first-order spread comes only
   from the path's change within each epoch, which is why it is ~ lr (one epoch moves the path by
   O(lr m)), not the sqrt(lr c_B) of independent batches (theory.sgd.ou_variance).
4. No label noise: g_i vanishes with E, so the LNA variance -> 0 with the residual (the stationary law
   at the minimum is a point mass, theory.published item 1(b)); what can be asserted is the spread
   along the path, including the late approach and the escapes (the LNA linearises the escape too:
   an unstable direction of H amplifies delta, which is the growth of the spread during an escape).
   Sampling law of a measured variance from S independent runs, if delta is Gaussian (a sum of many
   independent epoch contributions): (S - 1) s^2 / Var ~ chi^2_{S-1}; for a sum of the variances of
   correlated entries with predicted covariance eigenvalues mu: Welch-Satterthwaite, chi^2_nu / nu
   with nu = (S - 1) (sum mu)^2 / sum mu^2 (:func:`variance_ratio_interval`).
5. The same-order second-order term. A decoupled mode on an aligned path obeys the scalar
   u_{k+1} = u_k + lr f(u_k)(1 + c_k), c_k = (V^T Sxx_b V)_aa - 1 summing to 0 over an epoch; its
   first-order deviation lr sum_k Phi(T, k+1) f(u_k) c_k has Phi(T, k+1) f(u_k) = f(u_T)(1 + O(lr))
   (the flow's tangent is carried along the flow): SGD's first-order noise on a decoupled mode is a
   time shift that every full epoch undoes. Under reshuffling the LNA is therefore lr^3 in variance
   (path change within an epoch), and the multiplicative noise acting on the within-epoch
   displacement is of the same order: theory.spread_pair adds it (``pair_draws``). Checked once
   outside the suite (exact SGD, d = 2, width 3, n = 12, 4000 runs, t = 3): measured / LNA variance of
   the 2 x 2 block 2.4 (B = 3) and 3.6 (B = 6) at lr = 0.02, 0.01, 0.005 alike; measured / (LNA + pair)
   0.98-1.02 (per entry 0.94-1.04). Still neglected: the state-quadratic drift term 1/2 F''[delta, delta]
   of the accumulated deviation. It is second order in the spread and negligible for the block, but
   it is the leading term of a read-out whose lower orders vanish: the strength of a mode that has
   converged (f -> 0), fed by products of its off-diagonal deviations, is not predicted here.
   Escape growth: the LNA linearises the escape path (an unstable direction of H amplifies delta);
   for independent batches the scalar version is theory.published.variance_ode.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import chi2

from dlncheck.spectra import prefix_suffix_products
from dlncheck.theory.sgd_drift import gd_step
from dlncheck.theory.spread_pair import epoch_pair_covariance, pair_matrix

CHUNK = 2**22  # elements of one batched pair-term Monte-Carlo (read-outs x draws x steps x n x epochs)


def path_covariance(z: np.ndarray, n: int, B: int, lr: float) -> np.ndarray:
    """Cov of the read-outs' deviation lr^2 sum_e Cov_e, z (J, steps, n) from step 0 (item 3)."""
    m = n // B
    J, T, _ = z.shape
    E = -(-T // m)
    zp = np.zeros((J, E * m, n))
    zp[:, :T] = z
    zp = zp.reshape(J, E, m, n)
    Z, zeta, tot = zp.sum(2), zp.sum(3), zp.sum((2, 3))  # (J,E,n), (J,E,m), (J,E)
    cov = (
        np.einsum("jekn,lekn->jl", zp, zp) / B
        - np.einsum("jen,len->jl", Z, Z) / n
        - np.einsum("jek,lek->jl", zeta, zeta) / (n * B)
        + tot @ tot.T / n**2
    )
    return lr**2 * cov / (n - 1)


def tangent_and_hvp(W, M, V):
    """For tangents V (list of (J, *W_l.shape)): dW = J_W V (J, d_out, d_in) and H V, H the Hessian of
    0.5 ||W_L...W_1 - M||^2 (exact: Gauss-Newton part plus the residual's second-order part)."""
    L = len(W)
    P, A = prefix_suffix_products(W)
    E = P[-1] - M
    dP = [torch.zeros_like(P[0]).expand(V[0].shape[0], *P[0].shape)]
    for l in range(L):
        dP.append(V[l] @ P[l] + W[l] @ dP[l])
    dA = [torch.zeros_like(A[L - 1]).expand(V[0].shape[0], *A[L - 1].shape)] * L  # dA[l] is set for l < L - 1 below
    for l in range(L - 1, 0, -1):
        dA[l - 1] = dA[l] @ W[l] + A[l] @ V[l]
    dW = dP[L]
    hv = [dA[l].mT @ (E @ P[l].mT) + (A[l].mT @ dW) @ P[l].mT + (A[l].mT @ E) @ dP[l].mT for l in range(L)]
    return dW, hv


def readout_adjoint(W, U, Vt):
    """lambda_T for read-outs u_a^T W v_b: layer l: A_l^T u_a v_b^T P_l^T, (a, b) flattened row-major."""
    P, A = prefix_suffix_products(W)
    r = U.shape[1]
    left = [A[l].mT @ U for l in range(len(W))]  # (d_l, r)
    right = [P[l] @ Vt for l in range(len(W))]  # (d_{l-1}, r)
    return [torch.einsum("ia,jb->abij", lf, rt).reshape(r * r, lf.shape[0], rt.shape[0]) for lf, rt in zip(left, right)]


def gd_path(weights0, M, lr: float, steps: int) -> list[torch.Tensor]:
    """GD iterates theta_0..theta_steps, per layer (steps + 1, *shape) (whitened full batch)."""
    W = [w.detach().double().clone() for w in weights0]
    out = [torch.empty(steps + 1, *w.shape, dtype=torch.float64) for w in W]
    for k in range(steps + 1):
        for o, w in zip(out, W):
            o[k] = w
        if k < steps:
            W = gd_step(W, M, lr)
    return out


def lna_covariance(
    weights0, X, M, lr: float, steps: int, targets, n_modes: int, batch_sizes, pair_draws: int = 0, seed: int = 0
) -> dict:
    """Predicted run-to-run covariance of the (n_modes x n_modes) block u_a^T W v_b of the end-to-end
    map, (U, V) GD's singular frame at each target step (items 2-3): {(target, B): (r^2, r^2)} and
    the GD spectra {target: s}. One GD pass, one adjoint pass (all targets together).
    ``pair_draws`` > 0 adds the same-order second-order term of theory.spread_pair (the first-order
    part alone stays under "lna"), Monte-Carlo over ~pair_draws shuffles per path and batch size
    (max(8, pair_draws / epochs) per epoch; the relative error of the sum ~ sqrt(2 / pair_draws))."""
    X, M = X.double(), M.double()
    n = X.shape[1]
    path = gd_path(weights0, M, lr, steps)
    targets = sorted({int(t) for t in targets})
    if targets[0] < 1 or targets[-1] > steps:
        raise ValueError(f"targets={targets} are invalid: use steps in 1..{steps}")
    r2 = n_modes**2
    lam = [torch.zeros(len(targets) * r2, *p.shape[1:], dtype=torch.float64) for p in path]
    z = np.zeros((len(targets) * r2, targets[-1], n))
    spectra = {}
    pair = {(t, int(B)): np.zeros((r2, r2)) for t in targets for B in batch_sizes}
    rng = np.random.default_rng(seed)
    draws = {int(B): max(8, -(-pair_draws // -(-targets[-1] // (n // int(B))))) for B in batch_sizes}
    buffers: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {int(B): [] for B in batch_sizes}
    mmax = max(n // int(B) for B in batch_sizes)
    if any(mmax % (n // int(B)) for B in batch_sizes):
        raise ValueError(
            f"batch_sizes={batch_sizes} are invalid with pair_draws: each n // B must divide "
            "the largest n // B (Q is frozen over the longest epoch)"
        )

    def flush(B):
        if buffers[B]:
            cov = epoch_pair_covariance(
                np.stack([b[0] for b in buffers[B]]), np.stack([b[1] for b in buffers[B]]), n, B, lr, draws[B], rng
            )
            for q, t in enumerate(targets):
                pair[(t, B)] += cov[q * r2 : (q + 1) * r2, q * r2 : (q + 1) * r2]
            buffers[B].clear()

    for k in range(targets[-1] - 1, -1, -1):
        for q, t in enumerate(targets):
            if k + 1 == t:
                Wt = [p[t] for p in path]
                Uf, s, Vh = torch.linalg.svd(torch.linalg.multi_dot(Wt[::-1]) if len(Wt) > 1 else Wt[0])
                spectra[t] = s[:n_modes].numpy()
                for lm, c in zip(lam, readout_adjoint(Wt, Uf[:, :n_modes], Vh[:n_modes].T)):
                    lm[q * r2 : (q + 1) * r2] = c
        Wk = [p[k] for p in path]
        dW, hv = tangent_and_hvp(Wk, M, lam)
        E = torch.linalg.multi_dot(Wk[::-1]) - M if len(Wk) > 1 else Wk[0] - M
        z[:, k] = torch.einsum("in,ji,ajk,kn->an", X, E, dW, X).numpy()
        if pair_draws and k % mmax == 0:  # Q frozen over mmax steps
            Q = pair_matrix(Wk, M, X, lam).numpy()
            for B in buffers:
                m = n // B
                for e in range(k, min(k + mmax, targets[-1]), m):  # epochs starting in [k, k + mmax)
                    if all(e + m <= t or e >= t for t in targets):  # a full epoch for every read-out
                        buffers[B].append((z[:, e : e + m], Q))
                        if len(buffers[B]) * r2 * len(targets) * draws[B] * n * m >= CHUNK:
                            flush(B)
                        continue
                    for q, t in enumerate(targets):  # the epoch straddles a target
                        if e < t:
                            rows = slice(q * r2, (q + 1) * r2)
                            pair[(t, B)] += epoch_pair_covariance(
                                z[None, rows, e : min(t, e + m)], Q[None, rows], n, B, lr, draws[B], rng
                            )
        lam = [lm - lr * h for lm, h in zip(lam, hv)]
    for B in buffers:
        flush(B)
    out = {}
    for q, t in enumerate(targets):
        block = z[q * r2 : (q + 1) * r2, :t]
        for B in batch_sizes:
            out[(t, int(B))] = path_covariance(block, n, int(B), lr)
    total = {key: out[key] + pair[key] for key in out} if pair_draws else out
    return {"cov": total, "lna": out, "gd_s": spectra}


def variance_ratio_interval(cov: np.ndarray, runs: int, alpha: float) -> tuple[float, float]:
    """Two-sided 1 - alpha interval of (sum of the measured run-to-run variances of the read-outs
    whose predicted covariance is ``cov``) / trace(cov), from ``runs`` independent Gaussian runs:
    chi^2_nu / nu with Welch-Satterthwaite nu = (runs - 1) (sum mu)^2 / sum mu^2 (exact, nu = runs - 1,
    for one read-out)."""
    nu = welch_dof(cov, runs)
    return float(chi2.ppf(alpha / 2, nu) / nu), float(chi2.ppf(1 - alpha / 2, nu) / nu)


def welch_dof(cov: np.ndarray, runs: int) -> float:
    """Welch-Satterthwaite nu = (runs - 1) (sum mu)^2 / sum mu^2 of the read-outs with covariance ``cov``."""
    mu = np.clip(np.linalg.eigvalsh(np.atleast_2d(cov)), 0, None)
    if runs < 2 or mu.sum() <= 0:
        raise ValueError(f"runs={runs}, trace={mu.sum()} are invalid: need >= 2 runs and a positive variance")
    return float((runs - 1) * mu.sum() ** 2 / (mu**2).sum())
