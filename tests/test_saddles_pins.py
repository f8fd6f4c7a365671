"""Pins (issue 26 item 3): pin energy and gradient, the pinned sampler and polish, the pinned non-strict sets."""

import pytest
import torch
from test_saddles_normal_form import teacher

from dlncheck.saddles import NormalForm, certify, oracle_kind, sample
from dlncheck.saddles.pins import check_pins, pin_energy, pin_products, pins_closed
from dlncheck.saddles.polish import polish

M = teacher(4, 4, [3.0, 2.0, 1.5, 1.0], seed=1)
PINS_L4 = ((2,), (1, "sigma"), (4, 3))
PINS_L3 = ((2,), (3,), (1, "sigma"))


def random_blocks(nf, chains=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(chains, *s, generator=g, dtype=torch.float64) for s in nf.shapes]


def closed_form_grad(nf, Z, pins):
    """grad_{Z_l} 0.5 ||X_1...X_k||^2 = sum over positions i of Z_l of A^T P B^T, A = X_1..X_{i-1}, B = X_{i+1}..X_k."""
    grads = [torch.zeros_like(z) for z in Z]
    for pin, P in zip(pins, pin_products(nf, Z, pins)):
        mats = [nf.sigma if x == "sigma" else Z[x - 1] for x in pin]
        for i, x in enumerate(pin):
            if x == "sigma":
                continue
            G = P
            for A in mats[:i]:  # A^T P = X_{i-1}^T ... X_1^T P
                G = A.mT @ G
            for B in reversed(mats[i + 1 :]):  # ... B^T = X_k^T ... X_{i+1}^T
                G = G @ B.mT
            grads[x - 1] += G
    return grads


def stratum_point_L4(nf, chains=4, seed=0):
    """Z_2 = 0, Z_1 = a v_1^T (so Z_1 sigma = 0), Z_4 Z_3 = 0 with Z_3, Z_4 of complementary ranks 2 and 2."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(chains, nf.shapes[0][0], 1, generator=g, dtype=torch.float64)
    Z1 = a @ nf.V[:, :1].mT
    Q = torch.linalg.qr(torch.randn(chains, 4, 4, generator=g, dtype=torch.float64))[0]
    Z3 = Q[..., :2] @ torch.randn(chains, 2, 4, generator=g, dtype=torch.float64)  # range(Z_3) = span Q[:, :2]
    Z4 = torch.randn(chains, 3, 2, generator=g, dtype=torch.float64) @ Q[..., 2:].mT  # Z_4 kills span Q[:, :2]
    return [Z1, torch.zeros(chains, *nf.shapes[1], dtype=torch.float64), Z3, Z4]


@pytest.mark.parametrize("pins", [PINS_L4, ((1, "sigma", 4, 3),), ((3, 2, 1),), ((2, 1, "sigma", 4, 3, 2),)])
def test_pin_gradient_matches_closed_form_and_finite_differences(pins):
    nf = NormalForm(M, [0], [4, 5, 5, 5, 4])
    Z = [z.requires_grad_(True) for z in random_blocks(nf)]
    grads = torch.autograd.grad(pin_energy(nf, Z, pins).sum(), Z, materialize_grads=True)
    for g, ref in zip(grads, closed_form_grad(nf, [z.detach() for z in Z], pins)):
        torch.testing.assert_close(g, ref, rtol=1e-12, atol=1e-12)
    one = [z.detach()[:1].clone().requires_grad_(True) for z in Z]
    assert torch.autograd.gradcheck(lambda *b: pin_energy(nf, list(b), pins), one)


def test_pins_already_zero_contribute_nothing():
    """On the pinned set: pin energy 0 and zero gradient; E = 0 there; the pinned sampler without noise
    moves exactly as the unpinned one (only the norm prior acts, along the set)."""
    nf = NormalForm(M, [0], [4, 5, 5, 5, 4])
    Z = [z.requires_grad_(True) for z in stratum_point_L4(nf)]
    P = pin_energy(nf, Z, PINS_L4)
    assert torch.all(P < 1e-28) and torch.all(nf.energy(Z) < 1e-28)
    for g in torch.autograd.grad(P.sum(), Z):
        assert float(g.abs().max()) < 1e-14
    assert pins_closed(nf, [z.detach() for z in Z], PINS_L4).all()
    kw = dict(step_size=0.05, beta=100.0, norm_strength=1.0, norm_blocks=(1, 3, 4), noise=False, record_every=50)
    Z0 = [z.detach() for z in Z]
    with_pins = sample(nf, 4, 50, init=Z0, pins=PINS_L4, pin_strength=5.0, **kw)
    without = sample(nf, 4, 50, init=Z0, **kw)
    for a, b in zip(with_pins.Z, without.Z):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_sampler_step_uses_the_tempered_pin_gradient():
    """One noise-free step: Z' = Z - eps/2 beta (grad E + gamma grad P), eps = h / beta (sampler docstring)."""
    nf = NormalForm(M, [0], [4, 5, 5, 4])
    Z = random_blocks(nf, chains=2, seed=3)
    h, beta, gamma = 0.01, 7.0, 3.0
    out = sample(nf, 2, 1, step_size=h, beta=beta, init=Z, pins=PINS_L3, pin_strength=gamma, noise=False)
    Zg = [z.clone().requires_grad_(True) for z in Z]
    gE = torch.autograd.grad(nf.energy(Zg).sum(), Zg)
    gP = closed_form_grad(nf, Z, PINS_L3)
    for z, z1, e, p in zip(Z, out.Z, gE, gP):
        torch.testing.assert_close(z1, z - 0.5 * (h / beta) * beta * (e + gamma * p), rtol=1e-12, atol=1e-14)


def test_check_pins_accepts_cyclic_runs_and_rejects_others():
    nf = NormalForm(M, [0], [4, 5, 5, 5, 4])
    assert check_pins(nf, [[2], (1, "sigma", 4, 3)]) == ((2,), (1, "sigma", 4, 3))
    for bad in [(), (1, 3), ("sigma", 1), (5,), (0,), (1, "sigma", 3)]:
        with pytest.raises(ValueError, match="contiguous run"):
            check_pins(nf, [bad])
    with pytest.raises(ValueError, match="pin_strength"):
        sample(nf, 2, 1, pins=PINS_L4, pin_strength=0.0)


def test_polish_with_pins_lands_on_the_pinned_set_and_it_is_non_strict():
    """LM from a perturbed pinned point: E = 0 and every pin closed; the dense certificate and the oracle
    both read non-strict. Without pins the same polish keeps E = 0 but not the pins (the power of the pins)."""
    nf = NormalForm(M, [0], [4, 5, 5, 5, 4])
    g = torch.Generator().manual_seed(5)
    Z = [z + 1e-2 * torch.randn(z.shape, generator=g, dtype=z.dtype) for z in stratum_point_L4(nf)]
    Zp = polish(nf, Z, 30, pins=PINS_L4)
    assert pins_closed(nf, Zp, PINS_L4).all() and float(nf.energy(Zp).max()) < 1e-24
    W = nf.weights(Zp)
    for c in range(Zp[0].shape[0]):
        cert = certify([w[c] for w in W], M, method="dense")
        assert cert.kind == "non-strict" == oracle_kind(nf, [z[c] for z in Zp]).kind, cert
    assert not pins_closed(nf, polish(nf, Z, 30), PINS_L4).any()
