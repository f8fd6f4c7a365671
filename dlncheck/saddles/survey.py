"""Certify a batch of normal-form samples: one tidy row per sample.

Per chain: E(Z), the dense and the Lanczos certificates (kind, lambda_min, zero band, inertia),
the oracle's prediction, the gauge-invariant rank signature. The loop runs over samples because
each is its own eigenproblem (SGLD itself is batched).
"""

from __future__ import annotations

import pandas as pd

from dlncheck.saddles.certify import DENSE_MAX, certify
from dlncheck.saddles.diversity import rank_signature
from dlncheck.saddles.normal_form import NormalForm
from dlncheck.saddles.oracle import oracle_kind


def survey(nf: NormalForm, Z, *, k: int = 4, dense: bool | None = None) -> pd.DataFrame:
    """Rows: chain, energy, loss, grad_norm, kind (dense if run, else Lanczos), lambda_min[_dense|_lanczos],
    tau, tau_round, n_neg, n_zero, n_pos, oracle, oracle_reason, signature."""
    W, E = nf.weights(Z), nf.energy(Z)
    sigs = rank_signature(nf, Z)
    rows = []
    for c in range(E.shape[0]):
        w = [x[c] for x in W]
        lz = certify(w, nf.M, method="lanczos", k=k, seed=c)
        run_dense = dense if dense is not None else lz.n_params <= DENSE_MAX
        dn = certify(w, nf.M, method="dense", k=k) if run_dense else None
        ref = dn or lz
        pred = oracle_kind(nf, [z[c] for z in Z])
        rows.append(
            {
                "chain": c,
                "energy": float(E[c]),
                "loss": ref.loss,
                "grad_norm": ref.grad_norm,
                "kind": ref.kind,
                "kind_lanczos": lz.kind,
                "lambda_min": ref.lambda_min,
                "lambda_min_lanczos": lz.lambda_min,
                "lambda_min_dense": dn.lambda_min if dn else float("nan"),
                "h_norm": ref.h_norm,
                "tau": ref.tau,
                "tau_round": ref.tau_round,
                "tau_crit": ref.tau_crit,
                "n_neg": ref.n_neg,
                "n_zero": ref.n_zero,
                "n_pos": ref.n_pos,
                "n_params": ref.n_params,
                "oracle": pred.kind,
                "oracle_reason": pred.reason,
                "signature": " ".join(map(str, sigs[c])),
            }
        )
    return pd.DataFrame(rows)
