"""Dense Hessian certification of C networks at once (the batched counterpart of `certify`).

Same loss, zero band and kinds as `certify.certify` (see its docstring: tau = max(10 sqrt(n) eps ||H||_2,
sqrt(||grad|| ||H||_2))); the C Hessians come from one vmapped `certify.hessian` (reverse over reverse) and one batched eigvalsh,
computed in float64 on the weights' device.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from dlncheck.saddles.certify import hessian
from dlncheck.saddles.normal_form import chain_product


def certify_batch(W, M, loss_tol: float | None = None) -> pd.DataFrame:
    """One row per chain: kind, lambda_min, tau, grad_norm, loss, n_neg, n_zero, n_pos (W: (C, d_l, d_{l-1}))."""
    W = [torch.as_tensor(w).double() for w in W]
    M = torch.as_tensor(M).to(W[0]).double()
    shapes = [tuple(w.shape[1:]) for w in W]
    sizes = [int(np.prod(s)) for s in shapes]
    theta = torch.cat([w.reshape(w.shape[0], -1) for w in W], 1)

    def f(th):
        return 0.5 * ((chain_product([p.view(s) for p, s in zip(torch.split(th, sizes), shapes)]) - M) ** 2).sum()

    loss = torch.func.vmap(f)(theta)
    grad = torch.func.vmap(torch.func.grad(f))(theta)
    ev = torch.linalg.eigvalsh(torch.func.vmap(hessian(f))(theta)).cpu().numpy()
    n = theta.shape[1]
    s = torch.linalg.svdvals(M)
    loss_min = 0.5 * float((s[min(min(sh) for sh in shapes) :] ** 2).sum())
    if loss_tol is None:
        loss_tol = np.sqrt(np.finfo(float).eps) * 0.5 * float((M**2).sum())
    h_norm = np.abs(ev).max(1)
    gnorm = torch.linalg.vector_norm(grad, dim=1).cpu().numpy()
    tau = np.maximum(10.0 * np.sqrt(n) * np.finfo(float).eps * h_norm, np.sqrt(gnorm * h_norm))
    lam = ev[:, 0]
    loss = loss.cpu().numpy()
    kind = np.where(lam < -tau, "strict", np.where(loss - loss_min <= loss_tol, "minimum", "non-strict"))
    return pd.DataFrame(
        {
            "kind": kind,
            "lambda_min": lam,
            "tau": tau,
            "grad_norm": gnorm,
            "loss": loss,
            "h_norm": h_norm,
            "n_neg": (ev < -tau[:, None]).sum(1),
            "n_zero": (np.abs(ev) <= tau[:, None]).sum(1),
            "n_pos": (ev > tau[:, None]).sum(1),
        }
    )
