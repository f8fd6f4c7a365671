"""Saddle points of deep linear networks: normal form, constraint energy, SGLD, certification.

from dlncheck.saddles import (
    NormalForm,
    certify,
    oracle_kind,
    sample,
    survey,
)
nf = NormalForm(M, S=[0], widths=[4, 5, 5, 4])
Z = nf.zero_block_sample((1, 3), chains=8)        # E(Z) = 0 exactly (two zero blocks)
cert = certify([w[0] for w in nf.weights(Z)], M)  # kind, lambda_min, grad_norm, loss, inertia, tau
out = sample(nf, chains=64, steps=2000, zero_blocks=(1, 3), norm_strength=1.0)
table = survey(nf, out.Z)                          # certified kind vs oracle, one row per chain
ex = explore(nf, 64, anneal=200, hold=100, polish=30, step_size=0.1, beta0=10.0, beta_f=1e4, norm_strength=1.0)
# ex.table: per chain (sampled + collapsed null) energies, batched certificate, oracle kind, stratum
ex = explore(nf, 64, ..., norm_blocks=(1,), pins=[(2,), (3,), (1, "sigma")])  # aimed at the non-strict set
"""

from dlncheck.saddles.batch_certify import certify_batch
from dlncheck.saddles.certify import Certificate, certify
from dlncheck.saddles.diversity import (
    aligned_distances,
    count_distinct,
    invariant_features,
    rank_signature,
    spread,
)
from dlncheck.saddles.explore import Exploration, explore
from dlncheck.saddles.mcmc import ess, split_rhat
from dlncheck.saddles.normal_form import NormalForm
from dlncheck.saddles.oracle import Prediction, open_pairs, oracle_kind
from dlncheck.saddles.pins import check_pins, pin_energy, pin_products, pins_closed
from dlncheck.saddles.polish import polish as lm_polish
from dlncheck.saddles.refine import rebalance, refine
from dlncheck.saddles.sampler import SamplerDiverged, Samples, sample
from dlncheck.saddles.survey import survey

__all__ = [
    "Certificate",
    "Exploration",
    "NormalForm",
    "Prediction",
    "SamplerDiverged",
    "Samples",
    "aligned_distances",
    "certify",
    "certify_batch",
    "check_pins",
    "count_distinct",
    "ess",
    "explore",
    "invariant_features",
    "lm_polish",
    "open_pairs",
    "oracle_kind",
    "pin_energy",
    "pin_products",
    "pins_closed",
    "rank_signature",
    "rebalance",
    "refine",
    "sample",
    "split_rhat",
    "spread",
    "survey",
]
