"""The premise of the balance-drift split (theory.sgd item 2), checked from an init (protocol 1.3,
"Singular values"; issue #25 item 4: the split is asserted only on layers where its premise holds).

The split writes each learned mode alpha of layer l as a_{l,alpha} q_{l,alpha} q_{l-1,alpha}^T
(decoupled modes) and reads its layer scales off q^T D_l q = a_{l+1}^2 - a_l^2, D_l =
W_{l+1}^T W_{l+1} - W_l W_l^T. Gradient flow conserves D_l, so a mode's frames q_l stay its own only
while D_l does not couple it to other directions: an entry delta of D_l between mode alpha and a
direction of per-layer scale b^2 turns alpha's frame by ~ delta / |a_alpha^2 - b^2| (first-order
perturbation of the symmetric matrices W_l W_l^T, whose eigenvectors are the frames). Against the
unlearned directions (b -> 0) the gap is the mode's own balanced per-layer scale a^2 = s^{2/L} >=
s_min^{2/L} (gaps between learned modes are the teacher's, the same for every init; a closed one is
set apart by theory.sgd.split_predicted), so the split's predicted offset o carries a relative error
of order

    epsilon = max_l ||D_l(0)||_2 / s_min^{2/L}                       (:func:`balance_ratio`).

The offsets band (theory.offset_band) allows h |o| for the relative terms the first-order
prediction neglects (h = lr lambda_max, theory.sgd.truncation_tolerance), so the split's error stays
inside the band while epsilon <= h (:func:`split_premise_holds`); beyond that it is comparable to the
band and the split is not predicted. What holds for any init is the drift identity (theory.sgd
item 1, asserted through theory.balance_drift.sgd_extra_drift / sgd_drift_check). Balanced inits
(D_l = 0) and small random inits (||D_l|| ~ a0^2) satisfy the premise; LeCun (NTK) layers, with
||D_l|| of order one against s_min^{2/L}, do not. Checked from the init alone, before any run.
"""

from __future__ import annotations

import torch

from dlncheck.config.arrays import layers as check_layers
from dlncheck.config.validation import finite_float, integral

__all__ = ["balance_ratio", "split_premise_holds"]


def balance_ratio(weights, s_min: float) -> float:
    """epsilon = max_l ||W_{l+1}^T W_{l+1} - W_l W_l^T||_2 / s_min^{2/L} of one network ``weights``
    (L tensors (d_l, d_{l-1})), ``s_min`` the smallest learned teacher singular value."""
    weights = check_layers("weights", weights)
    integral("depth", len(weights), min=2, why=" (a balance matrix needs two adjacent layers)")
    s_min = finite_float("s_min", s_min, positive=True)
    worst = max(
        float(torch.linalg.matrix_norm(w2.mT @ w2 - w1 @ w1.mT, 2)) for w1, w2 in zip(weights[:-1], weights[1:])
    )
    return worst / s_min ** (2 / len(weights))


def split_premise_holds(weights, s_min: float, h: float) -> bool:
    """Whether the split's premise holds for this init: :func:`balance_ratio` <= h (module docstring)."""
    h = finite_float("h", h, positive=True)
    return balance_ratio(weights, s_min) <= h
