"""SGD's extra balance drift around the GD path: item 1 of :mod:`dlncheck.theory.sgd` (whose
docstring states the assumptions: whitened inputs, labels fixed with the data set, minibatches of
B of n samples drawn without replacement and reshuffled every epoch, time t = lr * step).

For any loss of the product, one step changes D_l = W_{l+1}^T W_{l+1} - W_l W_l^T by
exactly lr^2 (G_{l+1}^T G_{l+1} - G_l G_l^T) (first-order terms cancel). The per-sample
gradient of 0.5 ||W x_i - y_i||^2 with respect to the product is r_i x_i^T with the residual
r_i = W x_i - y_i (label noise included), and the full-batch gradient is G = (1/n) sum r_i x_i^T.
A minibatch gradient is G_b = G + Delta_b, Delta_b the mean of B per-sample deviations
r_i x_i^T - G drawn without replacement, so every second moment of Delta_b is
c_B = (n - B) / (B (n - 1)) times the population one (Cochran 1977, Thm 2.2). For the layer
gradients g_l = A_l^T G P_l^T this gives, summed along the path with the weights taken on the GD
path (error O(lr) relative):

    E[D_l^SGD(T)] - D_l^GD(T) = lr^2 c_B sum_{t<T/lr} C_l(W_t),
    C_l = P_{l+1} [Rin(A_{l+1} A_{l+1}^T) - G^T A_{l+1} A_{l+1}^T G] P_{l+1}^T
          - A_l^T [Rout(P_l^T P_l) - G P_l^T P_l G^T] A_l,
    Rin(K) = (1/n) sum_i (r_i^T K r_i) x_i x_i^T,   Rout(Q) = (1/n) sum_i (x_i^T Q x_i) r_i r_i^T,

where P_l = W_{l-1}...W_1 (input side), A_l = W_L...W_{l+1} (layers 1-based). With
r_i = E x_i - e_i (E = W - Syx, Syx = Y X^T / n, sum_i e_i x_i^T = 0) the bracket of the upper
term is Phi(E^T K E) - Psi - Psi^T + (1/n) sum_i (e_i^T K e_i) x_i x_i^T with
Phi(F) = (1/n) sum_i (x_i^T F x_i) x_i x_i^T - F and Psi = (1/n) sum_i (x_i^T E^T K e_i) x_i x_i^T:
the noise-free case e = 0 keeps Phi alone (the multiplicative noise, zero at W = M); the label
term does not vanish at GD's minimum, where it is the label-noise moment of
dlncheck.theory.gradient_noise (at E = 0 the two coincide: tests/test_sgd_theory.py).
Within-epoch correlations: batches of one epoch are disjoint, so Delta_b, Delta_b' are
negatively correlated; but step t's drift is quadratic in step t's batch only, so the expected
drift is a sum of single-step second moments and those correlations drop out at this order
(they shape the weights' fluctuations, which enter E[C(W_SGD)] - C(W_GD) at O(lr) relative).
They do matter for the spreads: one epoch's batch deviations sum to exactly zero, so the
accumulated noise is a bridge pinned to 0 at every epoch end, and the weights' deviation from
GD is O(lr) rather than the O(sqrt(lr c_B)) of independent batches. The OU exponents of
:mod:`dlncheck.theory.sgd` (item 3) assume independent batches; claims/test_scaling.py records where the data contradict them.
tests/test_sgd_theory.py checks this against a Monte-Carlo over shuffles.
"""

from __future__ import annotations

import dataclasses

import torch


def drift_covariance(
    weights: list[torch.Tensor], X: torch.Tensor, M: torch.Tensor, labels: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """C_l (l = 1..L-1) of item 1, batched over leading axes of the weights: (1/n) sum_i
    [dG_{l+1,i}^T dG_{l+1,i} - dG_{l,i} dG_{l,i}^T], dG_{l,i} = A_l^T (r_i x_i^T - G) P_l^T the
    per-sample deviations of the layer gradients, r_i = W x_i - y_i. ``labels`` Y (d_out, n):
    the data set's labels, M must then be its least-squares map Y X^T / n (problem.Syx); None:
    noise-free labels Y = M X."""
    return _drift_from_moments(weights, DataMoments.of(X, M, labels))


@dataclasses.dataclass(frozen=True)
class DataMoments:
    """The data's moments that C_l needs, so that no per-sample sum runs on the path: with
    r_i = W x_i - y_i and q_i = x_i^T Q x_i,
    (1/n) sum_i (r_i^T K r_i) x_i x_i^T = T(W^T K W) - 2 U(K W) + V(K),
    (1/n) sum_i q_i r_i r_i^T = W T(Q) W^T - W U^*(Q) - U^*(Q)^T W^T + V^*(Q),
    T, U, V the (1/n) sums of vec(x x^T), vec(y x^T), vec(y y^T) against vec(x x^T) (U^*, V^*
    their transposes); Sxx = X X^T / n, Syx = Y X^T / n give G = W Sxx - Syx."""

    T: torch.Tensor  # (d_in^2, d_in^2)
    U: torch.Tensor  # (d_out d_in, d_in^2)
    V: torch.Tensor  # (d_out^2, d_in^2)
    Sxx: torch.Tensor
    Syx: torch.Tensor

    @classmethod
    def of(cls, X: torch.Tensor, M: torch.Tensor, labels: torch.Tensor | None = None) -> DataMoments:
        if labels is None:
            labels = M @ X
        elif not torch.allclose(M, labels @ X.mT / X.shape[1], rtol=1e-10, atol=1e-12):
            raise ValueError(
                "M is not labels @ X.T / n: with labels given, pass M = problem.Syx (the "
                "least-squares map), or labels=None for noise-free labels Y = M X"
            )
        n = X.shape[1]
        xx, yx, yy = ((a[:, None] * b[None]).flatten(0, 1) for a, b in ((X, X), (labels, X), (labels, labels)))
        return cls(xx @ xx.mT / n, yx @ xx.mT / n, yy @ xx.mT / n, X @ X.mT / n, labels @ X.mT / n)


def _contract(F: torch.Tensor, moment: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """vec(F) @ moment, reshaped to (..., *shape): one gemm over every leading axis."""
    return (F.flatten(-2) @ moment).unflatten(-1, shape)


def _drift_from_moments(weights: list[torch.Tensor], m: DataMoments) -> list[torch.Tensor]:
    """:func:`drift_covariance` from the data's moments (d^4 work per path point, none per sample)."""
    d_in, d_out, dtype = m.Sxx.shape[0], m.Syx.shape[0], m.Sxx.dtype
    xx, yx, yy = (d_in, d_in), (d_out, d_in), (d_out, d_out)
    P = [torch.eye(d_in, dtype=dtype)]
    for w in weights:
        P.append(w @ P[-1])
    A = [torch.eye(d_out, dtype=dtype)]
    for w in reversed(weights[1:]):
        A.append(A[-1] @ w)
    A = A[::-1]  # A[l] = product of the layers above layer l (0-based)
    W = P[-1]
    G = W @ m.Sxx - m.Syx
    out = []
    for l in range(len(weights) - 1):
        K = A[l + 1] @ A[l + 1].mT
        Q = P[l].mT @ P[l]
        KW = K @ W
        r_in = _contract(W.mT @ KW, m.T, xx) - 2 * _contract(KW, m.U, xx) + _contract(K, m.V, xx) - G.mT @ K @ G
        qyx = _contract(Q, m.U.mT, yx)  # (1/n) sum_i q_i y_i x_i^T
        r_out = W @ _contract(Q, m.T, xx) @ W.mT - W @ qyx.mT - qyx @ W.mT + _contract(Q, m.V.mT, yy) - G @ Q @ G.mT
        out.append(P[l + 1] @ r_in @ P[l + 1].mT - A[l].mT @ r_out @ A[l])
    return out


#: bytes one d_l x d_l output of the batched drift pass may take over its path points (gd_path_drift)
CHUNK_BYTES = 2**26


def gd_path_drift(
    X: torch.Tensor,
    M: torch.Tensor,
    weights0: list[torch.Tensor],
    lr: float,
    steps: int,
    chunk: int = 256,
    labels: torch.Tensor | None = None,
    stops: torch.Tensor | None = None,
):
    """Run full-batch GD (toward M, the least-squares map) from weights0 and accumulate
    S_l = lr^2 sum_{t<steps} C_l(W_t) (``labels``: as in :func:`drift_covariance`).

    weights0 may carry leading batch axes (several inits of one data set: one program, one Python
    step loop for all). The weights of about ``chunk`` consecutive path points (steps x inits) are
    buffered and their C_l computed in one batched call, fewer where one path point's d_l x d_l
    output would make the batch pass CHUNK_BYTES (each point holds three: wide ntk layers, h = 1024,
    take 8 MB each), and inits (one leading axis) in halves where one step of them all would.
    ``stops`` (integers of the batch shape, each in [0, steps]): each element's own step count
    instead of ``steps`` (its sum stops at t < stop and its weights are those at step stop; one
    program runs to the largest). Returns (GD weights at the end, [S_l]); predicted
    E[D_l^SGD(T)] - D_l^GD(T) = c_B * S_l."""
    W = [w.detach().to(torch.float64).clone() for w in weights0]
    X, M = X.to(torch.float64), M.to(torch.float64)
    labels = None if labels is None else labels.to(torch.float64)
    batch = W[0].shape[:-2]
    stops = torch.full(batch, steps) if stops is None else torch.as_tensor(stops).expand(batch)
    if bool(((stops < 0) | (stops > steps)).any()):
        raise ValueError(f"stops={stops.reshape(-1).tolist()} is invalid: each must lie in [0, steps={steps}]")
    widest = max(w.shape[-2] for w in W[:-1]) if len(W) > 1 else 1
    if len(batch) == 1 and batch[0] > 1 and batch[0] * 8 * widest**2 > CHUNK_BYTES:
        parts = torch.arange(batch[0]).tensor_split(2)
        halves = [gd_path_drift(X, M, [w[p] for w in W], lr, steps, chunk, labels, stops[p]) for p in parts]
        W_end, S = ([torch.cat(ts) for ts in zip(*(h[i] for h in halves))] for i in (0, 1))
        return W_end, S
    steps = int(stops.max()) if stops.numel() else steps
    chunk = max(1, min(chunk, CHUNK_BYTES // (8 * widest**2)) // max(1, batch.numel()))
    moments = DataMoments.of(X, M, labels)
    acc = [torch.zeros(*batch, w.shape[-2], w.shape[-2], dtype=torch.float64) for w in W[:-1]]
    buffers = [torch.empty(chunk, *w.shape, dtype=torch.float64) for w in W]
    out = [w.clone() for w in W]
    stop_steps, first_stop = set(stops.reshape(-1).tolist()), int(stops.min()) if stops.numel() else steps
    done = 0
    while done < steps:
        k = min(chunk, steps - done)
        for j in range(k):
            for b, w in zip(buffers, W):
                b[j] = w
            W = gd_step(W, M, lr)
            if done + j + 1 in stop_steps:  # some element stops here: keep its weights
                at_stop = (stops == done + j + 1)[..., None, None]
                out = [torch.where(at_stop, w, o) for w, o in zip(W, out)]
        drift = _drift_from_moments([b[:k] for b in buffers], moments)
        if first_stop < done + k:  # some element stopped within this chunk: drop its later path points
            before = (done + torch.arange(k).view(-1, *[1] * len(batch)) < stops)[..., None, None]
            drift = [c * before for c in drift]
        for a, c in zip(acc, drift):
            a.add_(c.sum(0), alpha=lr**2)
        done += k
    return out, acc


def gd_step(W: list[torch.Tensor], M: torch.Tensor, lr: float) -> list[torch.Tensor]:
    """W_l <- W_l - lr A_l^T (W - M) P_l^T for all layers at once (whitened full batch)."""
    P = []
    acc = torch.eye(W[0].shape[-1], dtype=W[0].dtype)
    for w in W:
        P.append(acc)
        acc = w @ acc
    back = acc - M
    new = list(W)  # every layer is replaced below
    for l in reversed(range(len(W))):
        new[l] = W[l] - lr * back @ P[l].mT
        back = W[l].mT @ back
    return new
