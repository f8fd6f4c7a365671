"""Levenberg-Marquardt polish onto the variety E(Z) = 0, batched over chains.

E = ||r(Z)||^2 / 2 with r = (mu, dmu_1, ..., dmu_L) flattened, followed by the pin products when pins are
given (`saddles.pins`: the target is then the pinned part of the variety, E = 0 and every pin = 0).
Each step solves, per chain,
    (J^T J + lam I) dz = -J^T r,   lam = ||r||   (Yamashita & Fukushima 2001),
which converges quadratically to a zero of r wherever the local error bound dist(Z, {r = 0}) <= c ||r(Z)||
holds, including non-isolated zeros (plain gradient descent on E is only sublinear at degenerate zeros).
A step is kept only when it lowers E (otherwise lam grows tenfold for that chain). Fixed zero blocks stay zero.
"""

from __future__ import annotations

import torch

from dlncheck.saddles.normal_form import NormalForm
from dlncheck.saddles.pins import check_pins, pin_products


def polish(nf: NormalForm, Z, steps: int = 30, zero_blocks=(), pins=()):
    """Polished blocks (same shapes as Z, chain axis first) after `steps` LM iterations."""
    shapes = nf.shapes
    pins = check_pins(nf, pins)
    sizes = [m * n for m, n in shapes]
    free = torch.cat(
        [
            torch.full((s,), float(l not in zero_blocks), dtype=nf.M.dtype, device=nf.M.device)
            for l, s in enumerate(sizes, 1)
        ]
    )

    def residual(x):
        blocks = [p.view(s) for p, s in zip(torch.split(x, sizes), shapes)]
        parts = nf._dmus(blocks, nf.sigma, with_mu=True) + pin_products(nf, blocks, pins)
        return torch.cat([p.reshape(-1) for p in parts])

    x = torch.cat([z.reshape(z.shape[0], -1) for z in Z], 1).detach()
    jac = torch.func.vmap(torch.func.jacrev(residual))
    res = torch.func.vmap(residual)
    r = res(x)
    E = 0.5 * (r**2).sum(1)
    damp = torch.ones_like(E)
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    for _ in range(steps):
        J = jac(x) * free
        scale = (J**2).sum((1, 2))  # trace(J^T J): keeps A invertible in floating point
        lam = torch.maximum(damp * torch.sqrt(2 * E), torch.finfo(x.dtype).eps * scale).clamp_min(1e-300)
        A = J.mT @ J + lam[:, None, None] * eye
        dx = -torch.linalg.solve(A, (J.mT @ r[..., None]))[..., 0]
        x_new = x + dx
        r_new = res(x_new)
        E_new = 0.5 * (r_new**2).sum(1)
        ok = E_new < E
        x = torch.where(ok[:, None], x_new, x)
        r = torch.where(ok[:, None], r_new, r)
        E = torch.where(ok, E_new, E)
        damp = torch.where(ok, damp.clamp_min(1e-3) * 0.5, damp * 10)
    return [p.reshape(-1, *s) for p, s in zip(torch.split(x, sizes, dim=1), shapes)]
