"""Gauge-fixed normal form of a rank-r critical stratum and its constraint energy.

Protocol section 2. With M = U diag(s) V^T, a learned set S (|S| = r) and U_Q spanning the
complement of U_S, the layers (layer l maps d_{l-1} -> d_l) are

    W_1 = [U_S^T M ; Z_1],   W_l = diag(I_r, Z_l) (1 < l < L),   W_L = [U_S, U_Q Z_L],

so that W_L ... W_1 = P_S M + U_Q mu(Z) with mu(Z) = Z_L ... Z_1. With sigma = Sigma_XY U_Q
(population, whitened data: Sigma_XY = M^T) the first-order conditions of
L(W) = 0.5 ||W_L...W_1 - M||_F^2 restricted to the stratum read

    mu(Z) = 0,   dmu_l(Z) = Z_{l-1}...Z_1 sigma Z_L...Z_{l+1} = 0   (l = 1..L),

and E(Z) = 0.5 ||mu||^2 + 0.5 sum_l ||dmu_l||^2. When mu = 0 the DLN gradient is exactly
dL/dW_l = -[0 0; 0 dmu_l^T] (block form), hence E(Z) = 0 <=> grad L(weights(Z)) = 0 on the
stratum. (A critical point with mu != 0 exists too: the residual path then learns further
singular directions, i.e. the point belongs to a larger stratum and E > 0 there.)

Residual blocks carry any leading batch (chain) axes: Z_l has shape (..., d_l - r, d_{l-1} - r)
(Z_1: (..., d_1 - r, d_0)).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dlncheck.config import arrays
from dlncheck.config import validation as check
from dlncheck.engine.budget import memory_budget
from dlncheck.spectra import chain_product

Blocks = Sequence[torch.Tensor]


class NormalForm:
    """Normal form of the stratum (M, S) for a DLN of widths d_0..d_L (see module docstring).

    W_1 = [U_S^T M ; Z_1], W_l = diag(I_r, Z_l) (1 < l < L), W_L = [U_S, U_Q Z_L], so that
    W_L...W_1 = P_S M + U_Q mu(Z); E(Z) = 0.5 ||mu||^2 + 0.5 sum_l ||dmu_l||^2 is zero exactly on the
    critical points of the stratum (protocol section 2). :meth:`from_data` builds the empirical
    normal form of a data set (then ``X``, ``Y`` hold it; None otherwise).

    Parameters
    ----------
    M : (d_L, d_0) tensor or nested list
        The teacher (population regression matrix).
    S : sequence of int
        Learned singular directions: distinct 0-based indices into the descending singular values.
    widths : sequence of int
        d_0, d_1, ..., d_L (depth L >= 2) with d_0, d_L matching M and every width >= r = len(S).
    dtype : torch.dtype, default torch.float64
        Precision of M and every derived block.
    device : str or torch.device, optional
        Where M and the blocks live.

    M must be real, finite and at most finfo(dtype).max ** (1/4) in magnitude (the loss and energies
    hold squares and products of its entries); ``dtype`` float64 or float32.
    """

    def __init__(self, M, S, widths, *, dtype=torch.float64, device=None):
        dtype = check.DTYPES[check.dtype("dtype", dtype)]
        device = None if device is None else check.device("device", device)
        M = arrays.as_matrix("M", M, dtype, max_abs=torch.finfo(dtype).max ** 0.25).to(device)
        widths = list(check.int_sequence("widths", widths, min=1))
        if not 3 <= len(widths) <= check.MAX_DEPTH + 1:
            check.fail("widths", widths, f"list d_0..d_L with depth 2 <= L <= MAX_DEPTH={check.MAX_DEPTH}")
        if (widths[-1], widths[0]) != tuple(M.shape):
            check.fail(
                "widths",
                widths,
                f"d_L={widths[-1]}, d_0={widths[0]} do not match M of shape {tuple(M.shape)} "
                "(M is d_L x d_0); fix widths[0] and widths[-1]",
            )
        S = list(check.int_sequence("S", S))
        n_dir = min(M.shape)
        if len(set(S)) != len(S):
            check.fail("S", S, "it has repeated indices; list each learned direction once")
        if any(i < 0 or i >= n_dir for i in S):
            check.fail(
                "S",
                S,
                f"indices lie outside 0..{n_dir - 1} (M has {n_dir} singular directions); "
                "use 0-based indices of the descending singular values",
            )
        r = len(S)
        if min(widths) < r:
            check.fail("widths", widths, f"a layer is narrower than r={r}; every width must be >= |S|")
        self.M, self.S, self.widths, self.r, self.L = M, S, widths, r, len(widths) - 1
        U, s, Vh = torch.linalg.svd(M, full_matrices=True)
        Q = [i for i in range(M.shape[0]) if i not in S]
        self.U, self.s, self.V = U, s, Vh.mT
        self.Q = Q
        self.U_S, self.U_Q = U[:, S], U[:, Q]
        self.P_S = self.U_S @ self.U_S.mT
        self.signal = self.U_S.mT @ M  # (r, d_0): the first layer's signal rows
        self.sigma = M.mT @ self.U_Q  # Sigma_XY U_Q with Sigma_XY = M^T
        self.X: torch.Tensor | None = None  # the data of an empirical normal form (from_data)
        self.Y: torch.Tensor | None = None
        d = widths
        self.shapes = [(d[1] - r, d[0])] + [(d[l] - r, d[l - 1] - r) for l in range(2, self.L + 1)]

    @classmethod
    def from_data(cls, X, Y, S, widths, *, dtype=torch.float64, device=None):
        """Empirical normal form from inputs X (d_0, n) and targets Y (d_L, n).

        M = Sigma_YX Sigma_XX^{-1} and sigma = Sigma_XY U_Q with Sigma_XY = X Y^T / n. Caveat: the
        cyclic constraints with this sigma are the exact critical-point equations only for whitened
        inputs (Sigma_XX = I); otherwise the assembled weights are approximate critical points and
        `refine` on the true loss should follow. `batch_sigma(idx)` gives minibatch estimates.
        """
        dtype = check.DTYPES[check.dtype("dtype", dtype)]
        X, Y = (arrays.as_matrix(name, A, dtype).to(device) for name, A in (("X", X), ("Y", Y)))
        if X.shape[1] != Y.shape[1]:
            check.fail("Y", tuple(Y.shape), f"X (d_0, n) and Y (d_L, n) share n columns; X has shape {tuple(X.shape)}")
        n = X.shape[1]
        Sxx, Sxy = X @ X.mT / n, X @ Y.mT / n
        try:
            M = torch.linalg.solve(Sxx, Sxy).mT
        except RuntimeError:  # torch.linalg.LinAlgError
            check.fail("X", tuple(X.shape), "X X^T / n is singular: give at least d_0 samples spanning the inputs")
        nf = cls(M, S, widths, dtype=dtype, device=device)
        nf.X, nf.Y = X, Y
        nf.sigma = Sxy @ nf.U_Q
        return nf

    def batch_sigma(self, idx: torch.Tensor) -> torch.Tensor:
        """Minibatch estimate X_B Y_B^T / |B| U_Q of sigma (empirical normal forms only)."""
        if self.X is None or self.Y is None:
            raise ValueError("batch_sigma needs data: build the normal form with NormalForm.from_data(X, Y, S, widths)")
        n = self.X.shape[1]
        if not torch.is_tensor(idx) or idx.dtype not in (torch.int64, torch.int32) or idx.ndim != 1 or not len(idx):
            check.fail("idx", idx, "pass a non-empty 1-D integer tensor of sample indices")
        if bool(((idx < 0) | (idx >= n)).any()):
            check.fail("idx", idx, f"sample indices lie in [0, n={n})")
        XB, YB = self.X[:, idx], self.Y[:, idx]
        return XB @ YB.mT / XB.shape[1] @ self.U_Q

    # ---------------------------------------------------------------- stratum facts
    @property
    def r_max(self) -> int:
        """Largest reachable rank: min(rank M, narrowest width)."""
        floor = self.s[0] * self.s.numel() * torch.finfo(self.s.dtype).eps if self.s.numel() else 0.0
        rank_M = int((self.s > floor).sum()) if self.s.numel() else 0
        return min(rank_M, min(self.widths))

    @property
    def stratum_loss(self) -> float:
        """Loss on the stratum: 0.5 sum_{k not in S} s_k^2."""
        return 0.5 * float((self.M**2).sum() - (self.s[self.S] ** 2).sum())

    @property
    def global_min_loss(self) -> float:
        """Global minimum of the DLN loss: 0.5 sum_{k >= min width} s_k^2 (Eckart-Young)."""
        return 0.5 * float((self.M**2).sum() - (self.s[: min(self.widths)] ** 2).sum())

    @property
    def is_top(self) -> bool:
        """S is a top-r set: every learned s_j >= every unlearned s_k (ties allowed)."""
        if not self.S:
            return True
        unlearned = [k for k in range(self.s.numel()) if k not in self.S]
        return not unlearned or float(self.s[self.S].min()) >= float(self.s[unlearned].max())

    @property
    def is_global_minimum(self) -> bool:
        scale = 0.5 * float((self.M**2).sum())
        return self.stratum_loss - self.global_min_loss <= self.s.numel() * torch.finfo(self.M.dtype).eps * scale

    # ---------------------------------------------------------------- residual blocks
    def check(self, Z: Blocks, field: str = "Z") -> None:
        """Raise InvalidArgument naming the block (Z_l, or field[l-1] for another ``field``) whose
        type, dtype, device or trailing shape is wrong, or whose batch axes do not broadcast. Values
        are not read (the sampler calls this every step and checks the energy itself): non-finite
        blocks give non-finite energies."""
        if not isinstance(Z, (list, tuple)) or len(Z) != self.L:  # a tensor is no list of blocks
            check.fail(field, Z, f"pass a list of L={self.L} residual blocks Z_1..Z_L")
        for l, (z, shp) in enumerate(zip(Z, self.shapes), start=1):
            name = f"Z_{l}" if field == "Z" else f"{field}[{l - 1}]"
            if not torch.is_tensor(z) or z.dtype != self.M.dtype or z.device != self.M.device or z.ndim < 2:
                check.fail(name, z, f"pass a {self.M.dtype} tensor on {self.M.device} (..., {shp[0]}, {shp[1]})")
            if tuple(z.shape[-2:]) != shp:
                check.fail(
                    name,
                    tuple(z.shape),
                    f"residual block Z_{l} has shape (..., {shp[0]}, {shp[1]}) "
                    f"= (d_{l} - r, {'d_0' if l == 1 else f'd_{l - 1} - r'})",
                )
        try:
            torch.broadcast_shapes(*(z.shape[:-2] for z in Z))
        except RuntimeError:
            check.fail(field, [tuple(z.shape) for z in Z], "the blocks' leading (chain) axes do not broadcast")

    def check_chains(self, chains: int) -> int:
        """``chains`` >= 1 whose blocks fit the memory budget (engine.budget), before allocation."""
        chains = check.integral("chains", chains, min=1)
        size = chains * sum(m * n for m, n in self.shapes) * self.M.element_size()
        limit, source = memory_budget(None, str(self.M.device))
        if 8 * size > limit:  # the sampler holds about eight copies of the blocks
            check.fail("chains", chains, f"{chains} chains hold about {8 * size / 1e9:.3g} GB, over {source}")
        return chains

    def zeros(self, chains: int | None = None) -> list[torch.Tensor]:
        lead = () if chains is None else (self.check_chains(chains),)
        return [torch.zeros(*lead, *shp, dtype=self.M.dtype, device=self.M.device) for shp in self.shapes]

    def zero_block_sample(self, zero_blocks: Sequence[int], chains: int, seed: int = 0, scale: float = 1.0):
        """The seed's cheap construction: Z_a = 0 for a in zero_blocks (1-based), the rest
        N(0, scale^2 / fan_in). Two or more zero blocks make E(Z) = 0 exactly. Drawn on the CPU
        and moved to M's device, so a seed gives the same blocks on every device."""
        self._check_blocks(zero_blocks)
        chains, seed = self.check_chains(chains), check.seed("seed", seed)
        scale = check.nonneg("scale", scale)
        g = torch.Generator().manual_seed(seed)
        Z = []
        for l, (m, n) in enumerate(self.shapes, start=1):
            z = torch.randn(chains, m, n, generator=g, dtype=self.M.dtype) * (scale / max(n, 1) ** 0.5)
            Z.append((torch.zeros_like(z) if l in zero_blocks else z).to(self.M.device))
        return Z

    def _check_blocks(self, blocks: Sequence[int], field: str = "zero_blocks") -> None:
        blocks = check.int_sequence(field, blocks)
        if any(a < 1 or a > self.L for a in blocks) or len(set(blocks)) != len(blocks):
            check.fail(field, list(blocks), f"pass distinct 1-based block indices in 1..{self.L}")

    def weights(self, Z: Blocks) -> list[torch.Tensor]:
        """Assemble W_1..W_L (each (..., d_l, d_{l-1})) from residual blocks Z."""
        self.check(Z)
        lead = torch.broadcast_shapes(*(z.shape[:-2] for z in Z))
        r, dt = self.r, self.M.dtype

        def ex(A):
            return A.expand(*lead, *A.shape[-2:])

        W = [torch.cat([ex(self.signal), ex(Z[0])], dim=-2)]
        for l in range(2, self.L):
            z = ex(Z[l - 1])
            eye = ex(torch.eye(r, dtype=dt, device=self.M.device))
            top = torch.cat([eye, z.new_zeros(*lead, r, z.shape[-1])], dim=-1)
            bot = torch.cat([z.new_zeros(*lead, z.shape[-2], r), z], dim=-1)
            W.append(torch.cat([top, bot], dim=-2))
        W.append(torch.cat([ex(self.U_S), self.U_Q @ ex(Z[-1])], dim=-1))
        return W

    def mu(self, Z: Blocks) -> torch.Tensor:
        """Fiber map mu(Z) = Z_L ... Z_1, shape (..., d_L - r, d_0)."""
        self.check(Z)
        mu = chain_product(Z)
        assert mu is not None  # check: L >= 2 blocks
        return mu

    def dmu(self, Z: Blocks, l: int, sigma: torch.Tensor | None = None) -> torch.Tensor:
        """Cyclic map dmu_l = Z_{l-1}...Z_1 sigma Z_L...Z_{l+1} (l 1-based), shape (..., d_{l-1} - r, d_l - r)."""
        self.check(Z)
        l = check.integral("l", l, min=1, max=self.L)
        return self._dmus(Z, self._sigma(sigma, Z))[l - 1]

    def _sigma(self, sigma, Z: Blocks):
        """``sigma`` (default self.sigma): a (..., d_0, d_L - r) tensor of M's dtype and device whose
        batch axes broadcast against Z's; values are not read (as for Z)."""
        if sigma is None:
            return self.sigma
        if (
            not torch.is_tensor(sigma)
            or sigma.shape[-2:] != self.sigma.shape
            or sigma.dtype != self.M.dtype
            or sigma.device != self.M.device
        ):
            check.fail("sigma", sigma, f"pass a {self.M.dtype} tensor (..., {', '.join(map(str, self.sigma.shape))})")
        try:
            torch.broadcast_shapes(sigma.shape[:-2], *(z.shape[:-2] for z in Z))
        except RuntimeError:
            check.fail("sigma", tuple(sigma.shape), "its leading axes do not broadcast against the blocks' chain axes")
        return sigma

    def _dmus(self, Z, sigma, with_mu: bool = False):
        """[dmu_1, ..., dmu_L] (prefixed by mu = Z_L...Z_1, a by-product, when with_mu)."""
        L = self.L
        pre = [None]  # pre[l] = Z_l ... Z_1
        for z in Z:
            pre.append(z if pre[-1] is None else z @ pre[-1])
        suf = [None] * (L + 2)  # suf[l] = Z_L ... Z_l
        for l in range(L, 0, -1):
            suf[l] = Z[l - 1] if suf[l + 1] is None else suf[l + 1] @ Z[l - 1]
        out = []
        for l in range(1, L + 1):
            A = sigma if pre[l - 1] is None else pre[l - 1] @ sigma
            out.append(A if suf[l + 1] is None else A @ suf[l + 1])
        return [pre[L]] + out if with_mu else out

    def energy(self, Z: Blocks, sigma: torch.Tensor | None = None) -> torch.Tensor:
        """E(Z) = 0.5 ||mu||_F^2 + 0.5 sum_l ||dmu_l||_F^2, shape (...,) over leading axes."""
        self.check(Z)
        terms = self._dmus(Z, self._sigma(sigma, Z), with_mu=True)
        return 0.5 * sum((d**2).sum((-2, -1)) for d in terms)
