"""Free chains across strata: anneal, hold, polish, certify (protocol section 2, issue 16).

`explore` runs C sampled chains and C collapsed chains (one start replicated, no noise: the null of the
diversity claim) in one batched program through three stages:
  1. anneal beta from beta_0 to beta_f (eps_t = h / beta_t),
  2. hold at beta_f for `hold` steps, so chains relax to p_beta_f (the energy tolerance is read here),
  3. polish: Levenberg-Marquardt on the residuals of E onto the variety (`polish.polish`).
Every polished chain is then certified (batched dense Hessian), read by the structural oracle and given
its stratum: the rank signature of its residual partial products. With `pins` (`saddles.pins`) the anneal and
hold sample the tempered pinned energy E + gamma P, the polish lands on E = 0 with every pin = 0, and the
column `pinned` says whether a chain's pin products all have numerical rank 0 (True when there are no pins).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from dlncheck.saddles.batch_certify import certify_batch
from dlncheck.saddles.diversity import invariant_features, rank_signature, spread
from dlncheck.saddles.normal_form import NormalForm
from dlncheck.saddles.oracle import oracle_kind
from dlncheck.saddles.pins import pins_closed
from dlncheck.saddles.polish import polish as lm_polish
from dlncheck.saddles.sampler import sample


@dataclass(frozen=True)
class Exploration:
    table: pd.DataFrame  # one row per chain: null, energy_hold, energy, certificate, oracle, stratum, pinned
    trace: pd.DataFrame  # step, chain, null, stage, energy (recorded steps of the three stages)
    Z: list  # polished residual blocks, sampled chains then null chains


def explore(
    nf: NormalForm,
    chains: int,
    *,
    anneal: int,
    hold: int,
    polish: int,
    step_size: float,
    beta0: float,
    beta_f: float,
    seed: int = 0,
    init_scale: float = 0.5,
    record_every: int = 25,
    oracle_tol: float = 1e-6,
    **prior,
) -> Exploration:
    """Sampled chains 0..C-1 and collapsed null chains C..2C-1 (chain 0's start, no noise)."""
    Z0 = nf.zero_block_sample((), chains, seed=seed, scale=init_scale)
    init = [torch.cat([z, z[:1].expand_as(z)]) for z in Z0]
    noise = torch.cat([torch.ones(chains), torch.zeros(chains)])
    common = dict(step_size=step_size, record_every=record_every, noise=noise, **prior)
    a = sample(nf, 2 * chains, anneal, beta=beta0, beta_final=beta_f, init=init, seed=seed, **common)
    h = sample(nf, 2 * chains, hold, beta=beta_f, init=a.Z, seed=seed + 1, **common)
    E_hold = nf.energy(h.Z)
    Z = lm_polish(nf, h.Z, polish, zero_blocks=prior.get("zero_blocks", ()), pins=prior.get("pins", ()))
    traces = [
        out.trace[["step", "chain", "energy"]].assign(step=out.trace.step + offset, stage=stage)
        for stage, out, offset in (("anneal", a, 0), ("hold", h, anneal))
    ]
    traces.append(
        pd.DataFrame(
            {
                "step": anneal + hold + polish,
                "chain": np.arange(2 * chains),
                "energy": nf.energy(Z).cpu().numpy(),
                "stage": "polish",
            }
        )
    )
    trace = pd.concat(traces, ignore_index=True)
    trace["null"] = trace.chain >= chains
    table = certify_batch(nf.weights(Z), nf.M)
    sigs = rank_signature(nf, Z, tol=oracle_tol)
    table.insert(0, "chain", np.arange(2 * chains))
    table.insert(1, "null", table.chain >= chains)
    table.insert(2, "energy_hold", E_hold.cpu().numpy())
    table.insert(3, "energy", nf.energy(Z).cpu().numpy())
    table["oracle"] = [oracle_kind(nf, [z[c] for z in Z], tol=oracle_tol).kind for c in range(2 * chains)]
    table["stratum"] = [" ".join(map(str, s)) for s in sigs]
    table["pinned"] = pins_closed(nf, Z, prior.get("pins", ()), tol=oracle_tol).cpu().numpy()
    table["znorms"] = [" ".join(f"{float(torch.linalg.matrix_norm(z[c])):.3g}" for z in Z) for c in range(2 * chains)]
    return Exploration(table, trace, Z)


def diversity(nf: NormalForm, Z, chains: int) -> dict:
    """Spread of the gauge-invariant features of the sampled vs the null chains, with leave-one-out values."""
    F = invariant_features(nf, Z)
    s, s_loo = spread(F[:chains])
    n, n_loo = spread(F[chains:])
    return {"sampled": s, "sampled_loo": s_loo, "null": n, "null_loo": n_loo}
