"""Second-order certification of DLN critical points by Hessian-vector products.

L(theta) = 0.5 ||W_L ... W_1 - M||_F^2 over the flattened weights theta (float64). HVPs are
double-backward products through one retained gradient graph; the smallest eigenvalues come from
Lanczos (`scipy.sparse.linalg.eigsh`) on the shifted operator H - c I, c = ||H||_2, whose most
negative end is its largest-magnitude end (which="LM" converges fast there); small models also get
the dense Hessian (`hessian`: reverse over reverse, + `eigvalsh`) and its full inertia.

Zero band (an eigenvalue lambda counts as zero when |lambda| <= tau):
    tau = max(tau_round, tau_crit),
    tau_round = 10 sqrt(n) eps_mach ||H||_2      (backward error of n-term float64 HVPs/eigensolver),
    tau_crit  = sqrt(||grad L|| ||H||_2)         (a third-order saddle x* with L ~ a|x-x*|^3 shows
                                                   lambda ~ a delta at a point with ||grad|| ~ a delta^2,
                                                   a ~ ||H||_2: the band absorbs approximate criticality).
Kind: "minimum" if L - L_min <= loss_tol and lambda_min >= -tau (L_min from Eckart-Young:
0.5 sum_{k >= min width} s_k^2; a DLN has no spurious local minima, Kawaguchi NeurIPS 2016),
"strict" if lambda_min < -tau, else "non-strict".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh

from dlncheck.config import arrays
from dlncheck.config import validation as check
from dlncheck.engine.budget import memory_budget

DENSE_MAX = 2000


@dataclass(frozen=True)
class Certificate:
    kind: str  # "strict" | "non-strict" | "minimum"
    lambda_min: float
    grad_norm: float
    loss: float
    loss_min: float
    h_norm: float  # ||H||_2
    tau: float  # zero band half-width
    tau_round: float
    tau_crit: float
    n_neg: int  # eigenvalues < -tau (among those computed)
    n_zero: int | None  # |lambda| <= tau (None when only k eigenvalues are known)
    n_pos: int | None
    n_params: int
    method: str  # "dense" | "lanczos"
    eigenvalues: tuple  # the computed smallest eigenvalues, ascending

    @property
    def inertia(self) -> tuple:
        return (self.n_neg, self.n_zero, self.n_pos)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("eigenvalues")
        return d


def loss_function(weights, M, root=None):
    """Flat parameter vector theta0 and f(theta) = 0.5 ||(W_L...W_1 - M) root||_F^2 (float64, CPU).

    ``weights``: one network, L finite 2-D real tensors that compose; ``M``: a finite real matrix
    (d_L, d_0); ``root``: None (whitened inputs, root = I) or Sxx^{1/2} (d_0, d_0), which makes f the
    full-data loss of anisotropic inputs less its offset (config.data.Problem). Invalid ones raise
    InvalidArgument naming the argument."""
    for l, w in enumerate(arrays.layers("weights", weights), start=1):
        if w.ndim != 2:
            check.fail(
                f"weights[{l - 1}]",
                tuple(w.shape),
                f"certify takes one network: W_{l} must be 2-D; loop over chains or index one sample",
            )
    W = [w.detach().to("cpu", torch.float64) for w in weights]  # float64 CPU: SciPy's Lanczos
    M = arrays.as_matrix("M", M.detach().cpu() if torch.is_tensor(M) else M, torch.float64)
    shapes = [w.shape for w in W]
    sizes = [w.numel() for w in W]
    if (W[-1].shape[0], W[0].shape[1]) != tuple(M.shape):
        check.fail(
            "weights",
            [tuple(w.shape) for w in W],
            f"the network maps {W[0].shape[1]} -> {W[-1].shape[0]} but M has shape {tuple(M.shape)}: they must agree",
        )
    if root is not None:
        root = arrays.as_matrix("root", root.detach().cpu() if torch.is_tensor(root) else root, torch.float64)
        if tuple(root.shape) != (M.shape[1], M.shape[1]):
            check.fail("root", tuple(root.shape), f"Sxx^(1/2) must be ({M.shape[1]}, {M.shape[1]}) to match M")

    def f(theta):
        P = None
        for part, shp in zip(torch.split(theta, sizes), shapes):
            w = part.view(shp)
            P = w if P is None else w @ P
        error = P - M if root is None else (P - M) @ root
        return 0.5 * (error**2).sum()

    return torch.cat([w.reshape(-1) for w in W]), f


def hvp_operator(f, theta):
    """The Hessian of f at theta as a scipy LinearOperator: float64 HVPs by double backward through
    one retained gradient graph (Pearlmutter 1994), ~4x cheaper per product than re-tracing jvp(grad)."""
    th = theta.detach().clone().requires_grad_(True)
    g = torch.autograd.grad(f(th), th, create_graph=True)[0]

    def matvec(v):
        v = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64).reshape(-1))
        return torch.autograd.grad(g, th, v, retain_graph=True)[0].numpy()

    n = theta.numel()
    return LinearOperator((n, n), matvec=matvec, dtype=np.float64)


def lanczos_smallest(op, k: int, seed: int = 0):
    """The k smallest eigenvalues of the symmetric operator op and ||op||_2, by Lanczos.

    ||H||_2 = largest-magnitude eigenvalue; then eigsh on H - ||H||_2 I with which="LM"."""
    n = op.shape[0]
    v0 = np.random.default_rng(seed).standard_normal(n)
    norm = float(abs(eigsh(op, k=1, which="LM", v0=v0, return_eigenvectors=False)[0]))
    c = max(norm, np.finfo(float).tiny)
    shifted = LinearOperator(op.shape, matvec=lambda v: op.matvec(v) - c * v.reshape(-1), dtype=np.float64)
    # a wider Krylov basis than ARPACK's default 2k+1 lets clustered near-zero eigenvalues (non-strict points,
    # float32-rounded weights) converge
    mu = eigsh(shifted, k=min(k, n - 1), which="LM", v0=v0, return_eigenvectors=False, ncv=min(n, max(2 * k + 1, 40)))
    return np.sort(mu + c), norm


def hessian(f):
    """The dense Hessian of a scalar ``f``, reverse over reverse (jacrev of jacrev): the same matrix
    as torch.func.hessian (forward over reverse) to rounding, without forward-mode AD, whose first
    use scripts decompositions with the deprecated torch.jit.script. Composes with vmap."""
    return torch.func.jacrev(torch.func.jacrev(f))


def dense_eigenvalues(f, theta):
    """All Hessian eigenvalues (ascending) from the dense :func:`hessian`."""
    return torch.linalg.eigvalsh(hessian(f)(theta)).numpy()


def certify(
    weights, M, *, method: str = "auto", k: int = 6, loss_tol: float | None = None, seed: int = 0, root=None
) -> Certificate:
    """Classify the critical point ``weights`` of L = 0.5 ||(W_L...W_1 - M) root||_F^2 by its Hessian.

    "strict" if lambda_min < -tau, "minimum" if L - L_min <= loss_tol (and not strict), else
    "non-strict"; the zero band tau = max(10 sqrt(n) eps ||H||_2, sqrt(||grad L|| ||H||_2)) (module
    docstring).

    Parameters
    ----------
    weights : sequence of L tensors (d_l, d_{l-1})
        One network (2-D layers; loop over chains for a batch).
    M : (d_L, d_0) tensor
        The target map.
    method : {"auto", "dense", "lanczos"}, default "auto"
        "dense": full spectrum and exact inertia; "lanczos": the k smallest eigenvalues by Hessian-
        vector products; "auto": dense when n_params <= DENSE_MAX (2000).
    k : int, default 6
        Eigenvalues kept (Lanczos computes only these).
    loss_tol : float, optional
        Loss above the global minimum still called a minimum; default sqrt(eps) * 0.5 ||M root||_F^2.
    seed : int, default 0
        Seed of Lanczos' start vector.
    root : (d_0, d_0) tensor, optional
        Sxx^{1/2} of anisotropic inputs (config.data.Problem.root; None: whitened); M is then the
        least-squares map T, L_min the Eckart-Young value of M root (reduced-rank regression).

    Returns
    -------
    Certificate
        kind, lambda_min, grad_norm, loss, loss_min, ||H||_2, tau (and its two parts), the inertia
        (n_neg, n_zero, n_pos; zero and positive counts only when dense), n_params, method and the
        k smallest eigenvalues.
    """
    check.one_of("method", method, ("auto", "dense", "lanczos"))
    k = check.integral("k", k, min=1, why=" (eigenvalues requested)")
    loss_tol = None if loss_tol is None else check.nonneg("loss_tol", loss_tol)
    seed = check.seed("seed", seed)
    theta, f = loss_function(weights, M, root)
    n = theta.numel()
    method = ("dense" if n <= DENSE_MAX else "lanczos") if method == "auto" else method
    limit, source = memory_budget(None, "cpu")
    if method == "dense" and 3 * 8 * n * n > limit:  # the Hessian, its Jacobian build and eigvalsh's copy
        check.fail(
            "method",
            method,
            f"a dense Hessian of {n} parameters needs {24 * n * n / 1e9:.3g} GB, over {source}: use method='lanczos'",
        )
    loss = float(f(theta))
    grad_norm = float(torch.linalg.vector_norm(torch.func.grad(f)(theta)))
    if not np.isfinite(loss + grad_norm):
        check.fail("weights", "overflow", "the loss or its gradient overflows float64; rescale the weights and M")
    Mt = arrays.as_matrix("M", M.detach().cpu() if torch.is_tensor(M) else M, torch.float64)
    s = torch.linalg.svdvals(Mt if root is None else Mt @ torch.as_tensor(root, dtype=torch.float64).cpu())
    loss_min = 0.5 * float((s[min(min(w.shape) for w in weights) :] ** 2).sum())
    if loss_tol is None:
        loss_tol = np.sqrt(np.finfo(float).eps) * 0.5 * float((s**2).sum())
    if method == "dense":
        ev = dense_eigenvalues(f, theta)
        h_norm = float(np.abs(ev).max())
    else:
        ev, h_norm = lanczos_smallest(hvp_operator(f, theta), k, seed)
    tau_round = 10.0 * np.sqrt(n) * np.finfo(float).eps * h_norm
    tau_crit = float(np.sqrt(grad_norm * h_norm))
    tau = max(tau_round, tau_crit)
    lam = float(ev[0])
    n_neg = int((ev < -tau).sum())
    n_zero = int((np.abs(ev) <= tau).sum()) if method == "dense" else None
    n_pos = int((ev > tau).sum()) if method == "dense" else None
    if lam < -tau:
        kind = "strict"
    elif loss - loss_min <= loss_tol:
        kind = "minimum"
    else:
        kind = "non-strict"
    return Certificate(
        kind,
        lam,
        grad_norm,
        loss,
        loss_min,
        h_norm,
        tau,
        tau_round,
        tau_crit,
        n_neg,
        n_zero,
        n_pos,
        n,
        method,
        tuple(float(x) for x in ev[:k]),
    )
