"""Pins: products of residual blocks held at zero, to aim the sampler at a stratum (issue 26 item 3).

A pin is a contiguous run of the cyclic word ... Z_2 Z_1 sigma Z_L Z_{L-1} ... Z_1 sigma Z_L ..., written left
to right (matrix order) as a tuple of 1-based block indices and "sigma": (2,) is Z_2, (1, "sigma") is
Z_1 sigma, (4, 3) is Z_4 Z_3. These are the factors K = Z_{a-1..1} sigma Z_{L..b+1} and N = Z_{b-1..a+1}
whose vanishing closes a second-order pair (a, b) of the oracle (`oracle.open_pairs`; Achour, Malgouyres &
Gerchinovitz, JMLR 25, 2024). The pin energy

    P(Z) = 0.5 sum_pins ||X_1 X_2 ... X_k||_F^2,   grad_{Z_l} 0.5 ||A Z_l B||_F^2 = A^T (A Z_l B) B^T,

is tempered with E in the sampler (U = beta_t (E + gamma P) - log pi), so a pin already at zero contributes
neither energy nor gradient, and the Levenberg-Marquardt polish adds the pin products to its residuals.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dlncheck.saddles.normal_form import NormalForm
from dlncheck.spectra import numerical_rank

SIGMA = "sigma"


def check_pins(nf: NormalForm, pins: Sequence) -> tuple[tuple, ...]:
    """Pins as tuples of factors; ValueError naming a pin that is not a contiguous run of the cyclic word."""
    out = []
    for pin in pins:
        pin = tuple(pin)
        ok = bool(pin) and all(x == SIGMA or (isinstance(x, int) and 1 <= x <= nf.L) for x in pin)
        if ok:
            for left, right in zip(pin, pin[1:]):
                nxt = SIGMA if left == 1 else nf.L if left == SIGMA else left - 1
                ok = ok and right == nxt
        if not ok:
            raise ValueError(
                f"pin {pin} is not a contiguous run of ... Z_2 Z_1 sigma Z_{nf.L} ... (blocks 1..{nf.L} and "
                "'sigma', left to right in matrix order, e.g. (2,), (1, 'sigma'), (4, 3))"
            )
        out.append(pin)
    return tuple(out)


def pin_products(nf: NormalForm, Z, pins: Sequence, sigma: torch.Tensor | None = None) -> list[torch.Tensor]:
    """The product X_1 ... X_k of every pin (blocks with any leading chain axes)."""
    sigma = nf.sigma if sigma is None else sigma
    out = []
    for pin in check_pins(nf, pins):
        P: torch.Tensor | None = None
        for x in pin:
            A = sigma if x == SIGMA else Z[x - 1]
            P = A if P is None else P @ A
        assert P is not None  # check_pins refuses empty pins
        out.append(P)
    return out


def pin_energy(nf: NormalForm, Z, pins: Sequence, sigma: torch.Tensor | None = None) -> torch.Tensor:
    """P(Z) = 0.5 sum_pins ||product||_F^2, shape (...,) over leading axes (0 when there are no pins)."""
    parts = [0.5 * (P**2).sum((-2, -1)) for P in pin_products(nf, Z, pins, sigma)]
    lead = torch.broadcast_shapes(*(z.shape[:-2] for z in Z))
    total = Z[0].new_zeros(lead)
    for part in parts:
        total = total + part
    return total


def pins_closed(nf: NormalForm, Z, pins: Sequence, tol: float = 1e-6) -> torch.Tensor:
    """Per chain: every pin product has numerical rank 0 at the oracle's tolerance (largest singular value
    <= tol, the absolute rank floor of the oracle and of `diversity.rank_signature`): the chain lies on
    the pinned set."""
    closed = [numerical_rank(P, tol, atol=tol) == 0 for P in pin_products(nf, Z, pins)]
    return torch.stack(closed, -1).all(-1) if closed else torch.ones(Z[0].shape[0], dtype=torch.bool)
