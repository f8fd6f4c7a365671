"""SGLD over residual blocks, C chains in one batched tensor program (protocol section 2).

Target p_beta(Z) ~ exp(-beta (E(Z) + gamma P(Z))) pi(Z) with prior
    -log pi(Z) = alpha/2 sum_l ||Z_l||_F^2 + kappa/2 sum_{l targeted} (||Z_l||_F - rho)^2
(weight decay + norm targeting that keeps free blocks away from the trivial solution Z = 0) and the pin
energy P(Z) = 0.5 sum_pins ||product||_F^2 (`pins`; 0 without pins), tempered with E so that annealing
drives the pinned products to zero at the same rate as E without stiffening the early steps.
Update (Welling & Teh 2011):  Z <- Z - eps_t/2 grad U(Z) + N(0, eps_t I),  U = beta_t (E + gamma P) - log pi,
with beta_t annealed geometrically from `beta` to `beta_final` and eps_t = h / beta_t, so the
energy drift is a fixed-rate step h/2 on E while the noise shrinks as beta grows. `polish` final
steps drop noise and prior (gradient descent on E + gamma P) to land on the variety E = 0.
Fixed zero blocks stay exactly zero. Per chain and recorded step: energy, ||grad U||, ||Z_l||_F and
a MALA acceptance estimate min(1, exp(log ratio)) of the proposal made at that step, as in devinterp
(evaluated on recorded steps only, so the hot path costs one gradient per step).
`mala=True` turns the estimate into a Metropolis-Hastings correction (MALA; Roberts & Tweedie 1996):
every proposal is accepted with that probability, so p_beta is stationary exactly at any step size
(two gradients per step; full-batch energy only). `noise=False` drops the Langevin noise (annealed
gradient descent on U): the collapsed null of the diversity claim; a (chains,) 0/1 tensor switches
noise per chain, so sampled and collapsed chains share one batched program. Noise is drawn on M's device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from dlncheck.config import validation as check
from dlncheck.saddles.normal_form import NormalForm
from dlncheck.saddles.pins import check_pins, pin_energy


class SamplerDiverged(FloatingPointError):
    """A chain's energy became non-finite or exploded."""


@dataclass(frozen=True)
class Samples:
    Z: list  # L tensors (C, d_l - r, d_{l-1} - r): final residual blocks
    trace: pd.DataFrame  # step, chain, beta, energy, grad_norm, acceptance, znorm_1..znorm_L
    final: pd.DataFrame  # one row per chain: energy, znorm_l, mean acceptance


def _potential(nf, Z, beta, alpha, kappa, rho, targeted, sigma, pins=(), gamma=0.0):
    E = nf.energy(Z, sigma)
    pinned = E + gamma * pin_energy(nf, Z, pins, sigma) if pins and gamma else E
    prior = sum(0.5 * alpha * (z**2).sum((-2, -1)) for z in Z)
    if kappa:
        prior = prior + sum(0.5 * kappa * (torch.linalg.matrix_norm(z) - rho) ** 2 for z, f in zip(Z, targeted) if f)
    return beta * pinned + prior, E


def sample(
    nf: NormalForm,
    chains: int,
    steps: int,
    *,
    step_size: float = 1e-2,
    beta: float = 1e3,
    beta_final: float | None = None,
    alpha: float = 0.0,
    norm_target: float = 1.0,
    norm_strength: float = 0.0,
    zero_blocks=(),
    polish: int = 0,
    batch_size: int | None = None,
    init=None,
    init_scale: float = 1.0,
    seed: int = 0,
    record_every: int = 10,
    max_energy: float = 1e12,
    mala: bool = False,
    noise=True,
    norm_blocks=None,
    pins=(),
    pin_strength: float = 1.0,
    progress: bool = False,
) -> Samples:
    """Run `chains` SGLD chains for `steps` steps (+ `polish` noise-free steps) on nf's residuals.

    norm_blocks: 1-based blocks whose norm is targeted (default: every free block).
    pins: products held at zero (`saddles.pins`), weighted by gamma = pin_strength in the tempered energy."""
    if not isinstance(nf, NormalForm):
        check.fail("nf", nf, "pass a dlncheck.saddles.NormalForm")
    chains, seed = nf.check_chains(chains), check.seed("seed", seed)
    steps = check.steps("steps", steps)
    polish = check.integral("polish", polish, min=0, max=check.MAX_STEPS)
    record_every = check.integral("record_every", record_every, min=1)
    step_size = check.finite_float("step_size", step_size, positive=True)
    beta = check.finite_float("beta", beta, positive=True)
    if beta_final is not None:
        beta_final = check.finite_float("beta_final", beta_final, positive=True)
    alpha, norm_strength = check.nonneg("alpha", alpha), check.nonneg("norm_strength", norm_strength)
    norm_target, init_scale = check.nonneg("norm_target", norm_target), check.nonneg("init_scale", init_scale)
    max_energy = check.finite_float("max_energy", max_energy, positive=True)
    mala, progress = check.flag("mala", mala), check.flag("progress", progress)
    if batch_size is not None:
        batch_size = check.integral("batch_size", batch_size, min=1)
    noise = _check_noise(noise, chains)
    if init is not None:
        _check_init(nf, init, chains)
    if nf.is_global_minimum:
        raise ValueError(
            f"stratum S={nf.S} is the global minimum (loss {nf.stratum_loss:.3g}); "
            "choose |S| < r_max or a set that is not top-r to sample saddles"
        )
    nf._check_blocks(zero_blocks)
    if batch_size is not None and nf.X is None:
        raise ValueError("batch_size needs an empirical normal form: NormalForm.from_data(X, Y, S, widths)")
    if mala and batch_size is not None:
        raise ValueError(
            "mala=True needs the full-batch energy (the MH ratio of a minibatch energy is biased); "
            "drop batch_size or mala"
        )
    pins = check_pins(nf, pins)
    pin_strength = check.finite_float("pin_strength", pin_strength, positive=True)
    free = [l not in zero_blocks for l in range(1, nf.L + 1)]
    if norm_blocks is not None:
        nf._check_blocks(norm_blocks, "norm_blocks")
        if set(norm_blocks) & set(zero_blocks):
            raise ValueError(
                f"norm_blocks={list(norm_blocks)} overlap zero_blocks={list(zero_blocks)}; "
                "a fixed zero block cannot have its norm targeted"
            )
    targeted = free if norm_blocks is None else [l in norm_blocks for l in range(1, nf.L + 1)]
    dev = nf.M.device
    mask = [torch.tensor(float(f), dtype=nf.M.dtype, device=dev) for f in free]
    g = torch.Generator(device=dev).manual_seed(seed)
    noise = noise.to(nf.M.dtype).to(dev).expand(chains)[:, None, None]
    Z = init if init is not None else nf.zero_block_sample(zero_blocks, chains, seed=seed, scale=init_scale)
    Z = [(z.detach().clone() * m).requires_grad_(True) for z, m in zip(Z, mask)]
    nf.check(Z)
    beta_final = beta if beta_final is None else beta_final
    rows = []
    total = steps + polish

    def evaluate(Z, beta_t, noisy, sigma):
        a, k = (alpha, norm_strength) if noisy else (0.0, 0.0)
        U, E = _potential(nf, Z, beta_t if noisy else 1.0, a, k, norm_target, targeted, sigma, pins, pin_strength)
        grads = torch.autograd.grad(U.sum(), Z)
        return U.detach(), E.detach(), [gr * m for gr, m in zip(grads, mask)]

    n_data = 0 if nf.X is None else nf.X.shape[1]
    for t in tqdm(range(total), disable=not progress, desc="SGLD"):
        noisy = t < steps
        beta_t = beta * (beta_final / beta) ** (t / max(steps - 1, 1)) if noisy else math.inf
        eps = step_size / beta_t if noisy else step_size
        batch = torch.randint(n_data, (batch_size,), generator=g, device=dev) if batch_size else None
        sigma = nf.batch_sigma(batch) if batch is not None else None
        U, E, grads = evaluate(Z, beta_t, noisy, sigma)
        bad = ~torch.isfinite(E) | (E > max_energy)
        if bad.any():
            c = int(bad.nonzero()[0])
            raise SamplerDiverged(
                f"SGLD chain {c} diverged at step {t} (energy {float(E[c]):.3g}) with step size "
                f"eps_t={eps:.3g} (h={step_size}, beta_t={beta_t:.3g}); lower step_size"
            )
        with torch.no_grad():
            xi = [
                torch.randn(z.shape, generator=g, dtype=z.dtype, device=dev) * math.sqrt(eps) * m * noise
                if noisy
                else 0.0
                for z, m in zip(Z, mask)
            ]
            Z_new = [(z - 0.5 * eps * gr + n).requires_grad_(True) for z, gr, n in zip(Z, grads, xi)]
        acc = None
        if mala and noisy:  # Metropolis-Hastings correction of every proposal
            U_new, _, grads_new = evaluate(Z_new, beta_t, True, sigma)
            with torch.no_grad():
                acc = _mala_acceptance(Z, Z_new, U, U_new, grads, grads_new, eps)
                keep = (torch.rand(acc.shape, generator=g, dtype=acc.dtype, device=dev) >= acc)[..., None, None]
                Z_new = [torch.where(keep, z.detach(), zn.detach()).requires_grad_(True) for z, zn in zip(Z, Z_new)]
        if t % record_every == 0 or t == total - 1:
            if acc is None:
                acc = torch.full((chains,), math.nan, dtype=nf.M.dtype, device=dev)
            if noisy and not mala:  # acceptance is sampled on recorded steps only
                U_new, _, grads_new = evaluate(Z_new, beta_t, True, sigma)
                with torch.no_grad():
                    acc = _mala_acceptance(Z, Z_new, U, U_new, grads, grads_new, eps)
            gnorm = torch.sqrt(sum((gr**2).sum((-2, -1)) for gr in grads))
            znorms = {f"znorm_{l}": torch.linalg.matrix_norm(z.detach()).tolist() for l, z in enumerate(Z, 1)}
            rows.append(
                pd.DataFrame(
                    {
                        "step": t,
                        "chain": range(chains),
                        "beta": beta_t,
                        "energy": E.tolist(),
                        "grad_norm": gnorm.tolist(),
                        "acceptance": acc.tolist(),
                        **znorms,
                    }
                )
            )
        Z = Z_new
    Z = [z.detach() for z in Z]
    E = nf.energy(Z)
    trace = pd.concat(rows, ignore_index=True)
    final = pd.DataFrame(
        {
            "chain": range(chains),
            "energy": E.tolist(),
            **{f"znorm_{l}": torch.linalg.matrix_norm(z).tolist() for l, z in enumerate(Z, 1)},
            "acceptance": trace.groupby("chain").acceptance.mean().values,
        }
    )
    return Samples(Z, trace, final)


def _check_init(nf: NormalForm, init, chains: int) -> None:
    """Starting blocks: nf's shapes, dtype and device, a chain axis of ``chains``, finite."""
    nf.check(init, "init")
    for l, z in enumerate(init, start=1):
        if z.shape[:-2] not in ((chains,), (1,), ()):
            check.fail(f"init[{l - 1}]", tuple(z.shape), f"give Z_{l} a leading chain axis of {chains} (or none)")
        if not bool(torch.isfinite(z).all()):
            check.fail(f"init[{l - 1}]", z, "starting blocks must be finite")


def _check_noise(noise, chains: int) -> torch.Tensor:
    """``noise``: True/False, or a (chains,) tensor of 0/1 switches."""
    if isinstance(noise, (bool, np.bool_)):
        return torch.tensor(float(noise))
    if (
        not torch.is_tensor(noise)
        or noise.shape not in ((chains,), ())
        or not bool(((noise == 0) | (noise == 1)).all())
    ):
        check.fail("noise", noise, f"pass True, False or a ({chains},) tensor of 0/1 switches, one per chain")
    return noise.cpu()


def _mala_acceptance(Z, Z_new, U, U_new, g, g_new, eps):
    """min(1, p(Z') q(Z|Z') / (p(Z) q(Z'|Z))) per chain, q the Langevin proposal N(Z - eps/2 grad U, eps I)."""
    fwd = sum(((zn - z + 0.5 * eps * gr) ** 2).sum((-2, -1)) for z, zn, gr in zip(Z, Z_new, g))
    bwd = sum(((z - zn.detach() + 0.5 * eps * gn) ** 2).sum((-2, -1)) for z, zn, gn in zip(Z, Z_new, g_new))
    log_ratio = -(U_new - U) - (bwd - fwd) / (2 * eps)
    return torch.exp(torch.clamp(log_ratio.detach(), max=0.0))
