"""dlncheck.spectra patterns (rank, gap, log spectra of all P_ij) against NumPy SVDs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nets import random_net

from dlncheck import spectra


@pytest.mark.parametrize("eps", [1e-3, 0.3])
def test_rank_patterns_and_gaps_match_numpy_svd(eps):
    rng = np.random.default_rng(2)
    dims = [3, 4, 5]  # all products generically full rank
    weights = random_net(rng, dims, runs=3, checkpoints=2)
    weights[0][0, 0, :, 2] *= 1e-4  # one near-degenerate direction
    out = spectra.rank_patterns(weights, eps, gap_threshold=10.0)
    for run in range(3):
        for k in range(2):
            Ws = [W[run, k].numpy() for W in weights]
            for i in range(1, 3):
                for j in range(i, 3):
                    P = Ws[i - 1]
                    for layer in Ws[i:j]:
                        P = layer @ P
                    s = np.linalg.svd(P, compute_uv=False)
                    r = int((s > eps * s[0]).sum())
                    gap = np.inf if r == len(s) or s[r] == 0 else s[r - 1] / s[r]
                    assert out.r[run, k, i - 1, j - 1] == r
                    assert out.gap[run, k, i - 1, j - 1].item() == pytest.approx(gap, rel=1e-9)
                    assert bool(out.ambiguous[run, k, i - 1, j - 1]) == (gap < 10.0)
    assert not out.ambiguous[..., 1, 0].any()  # below the diagonal: never flagged


def test_rank_patterns_reject_bad_gap_threshold():
    with pytest.raises(ValueError, match="gap_threshold"):
        spectra.rank_patterns(random_net(np.random.default_rng(0), [2, 2], 2), 1e-5, gap_threshold=1.0)


def test_log_spectra_match_spectra_log_spectrum_and_numpy():
    rng = np.random.default_rng(3)
    dims = [4, 2, 5]  # P_12 is 5x4 of rank 2: sigma_3, sigma_4 ~ 0 -> padded/floored
    weights = random_net(rng, dims, runs=3, checkpoints=2)
    K, delta = 4, 1e-30
    out = spectra.log_spectra(weights, K, delta)
    products = spectra.partial_products(weights)
    for (i, j), P in products.items():
        np.testing.assert_allclose(out.s[..., i - 1, j - 1, :].numpy(), spectra.log_spectrum(P, K, delta).numpy())
        np.testing.assert_allclose(
            out.s_tilde[..., i - 1, j - 1, :].numpy(), spectra.log_spectrum(P, K, delta, normalized=True).numpy()
        )
    s = np.linalg.svd(weights[0][1, 0].numpy(), compute_uv=False)  # 2x4: two values
    np.testing.assert_allclose(out.s[1, 0, 0, 0].numpy(), np.log(np.r_[s, delta, delta]))
    assert torch.all(out.s[..., 1, 0, :] == 0)  # below the diagonal
