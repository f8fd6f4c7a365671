"""Saddle points of deep linear networks: normal form, constraint energy, SGLD, certification.

    from dlncheck.saddles import NormalForm, certify, oracle_kind
    nf = NormalForm(M, S=[0], widths=[4, 5, 5, 4])
    Z = nf.zero_block_sample((1, 3), chains=8)      # E(Z) = 0 exactly
    cert = certify([w[0] for w in nf.weights(Z)], M)  # kind, lambda_min, grad_norm, loss, inertia, tau
"""
from .certify import Certificate, certify
from .normal_form import NormalForm
from .oracle import Prediction, oracle_kind, open_pairs

__all__ = ["NormalForm", "certify", "Certificate", "oracle_kind", "open_pairs", "Prediction"]
