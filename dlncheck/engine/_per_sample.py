"""The BLAS path: a segment of steps for every row as batched GEMMs in cache-sized chunks of rows,
with the SGD rows in the moment form or in the per-sample form (engine._cost picks).

Per-sample form (SGD run r at step k, batch X_b = X[:, idx], Y_b = Y[:, idx], label noise included):

    a_0 = X_b,  a_l = W_l a_{l-1},  delta_L = a_L - Y_b,  delta_{l-1} = W_l^T delta_l,
    W_l <- W_l - lr/B delta_l a_{l-1}^T            (all layers from the same weights),

which is the moment form's step exactly: dL/dW_l = S_l^T G P_{l-1}^T with G = (W X_b - Y_b) X_b^T / B
= E Sxx - N (engine._batches), S_l^T (W X_b - Y_b) = delta_l and P_{l-1} X_b = a_{l-1}. It costs
O(L d^2 B) per row-step against O(L d^3) (engine._cost). GD rows (run 0) keep the moment form with
G = E. Matrices are stored transposed where that makes the GEMM contiguous (activations a_l^T,
B x d_l; prefixes P_l^T, d_0 x d_l): torch.bmm(a^T, W^T) runs 2-3x faster than W @ a at width.

Rows are advanced a chunk at a time through all of a segment's steps (engine._cost.chunk_rows):
their weights stay in cache from one step to the next.

The full-data loss ||P_L - Syx||_F needs the chain P_L = W_L ... W_1 (O(d_0 H), no cheaper than the
step at width): the per-sample rows compute it only at the steps in ``needed`` (the recorded ones),
at the first step, and after the last step, where it checks divergence. A row past ``limit`` there
(or non-finite) is replayed from the segment's start with its loss at every step, so train()
reports the first step past the bound, as the moment form does.
"""

from __future__ import annotations

import numpy as np
import torch

from dlncheck.engine import _cost as cost
from dlncheck.engine import _fused as fused


def chain_norm(W: list[torch.Tensor], SyxT: torch.Tensor) -> torch.Tensor:
    """||W_L ... W_1 - Syx||_F per row, from the input side (P_l^T = P_{l-1}^T W_l^T)."""
    PT = W[0].mT
    for w in W[1:]:
        PT = torch.bmm(PT, w.mT)
    return torch.linalg.vector_norm(PT - SyxT, dim=(-2, -1))


def moment_steps(W, SyxT, Sxx, N, lr, residual) -> None:
    """len(residual) moment-form steps of a block of rows, prefixes transposed. Sxx (k, rows, d_0,
    d_0) and N (k, rows, d_L, d_0) or None (GD: G = E); lr a float or a (rows, 1, 1) tensor."""
    scale = lr if isinstance(lr, torch.Tensor) else None
    alpha = 1.0 if scale is not None else lr
    for s in range(residual.shape[0]):
        PT = [W[0].mT]
        for w in W[1:]:
            PT.append(torch.bmm(PT[-1], w.mT))
        ET = PT[-1] - SyxT
        residual[s] = torch.linalg.vector_norm(ET, dim=(-2, -1))
        if Sxx is None:
            back = ET  # G^T = E^T
        elif N is None:
            back = torch.bmm(Sxx[s], ET)  # G^T = Sxx E^T (Sxx symmetric)
        else:
            back = torch.baddbmm(N[s].mT, Sxx[s], ET, beta=-1)  # G^T = Sxx E^T - N^T
        if scale is not None:
            back = back * scale
        for l in reversed(range(1, len(W))):
            below = torch.bmm(back, W[l])  # (W_l^T back_l)^T
            W[l].baddbmm_(back.mT, PT[l - 1], alpha=-alpha)  # W_l -= back_l P_{l-1}^T
            back = below
        W[0].sub_(back.mT, alpha=alpha)


def per_sample_steps(W, SyxT, xt, yt, idx, lr: float, residual, needed) -> None:
    """len(idx) per-sample steps of a block of rows; idx (k, rows, B), xt (n, d_0) = X^T, yt (n, d_L)
    = Y^T; residual[s] is written where needed[s] (else left as it is)."""
    c = lr / idx.shape[-1]
    for s in range(idx.shape[0]):
        if needed[s]:
            residual[s] = chain_norm(W, SyxT)
        a = [xt[idx[s]]]  # a_0^T (rows, B, d_0)
        for w in W:
            a.append(torch.bmm(a[-1], w.mT))  # a_l^T = a_{l-1}^T W_l^T
        delta = a[-1].sub_(yt[idx[s]])
        for l in reversed(range(len(W))):
            below = torch.bmm(delta, W[l]) if l else None  # delta_{l-1}^T = delta_l^T W_l
            W[l].baddbmm_(delta.mT, a[l], alpha=-c)  # W_l -= lr/B delta_l a_{l-1}^T
            delta = below


class FormPath:
    """advance(W, Syx, table, idx, lr, residual, needed=None, limit=None): the engine's step
    contract (engine._torch_path.advance_torch) in form ``form`` ('moment' or 'per-sample') on kernel
    ``kernel`` ('blas': batched GEMMs through torch; 'fused': the C kernel of engine._fused).
    ``needed`` (bool per step): the steps whose loss the caller keeps (None: all); ``limit`` (per
    row): the residual past which a row has diverged (None: no replay). Unneeded per-sample
    residuals are written 0."""

    sparse_loss = True  # train() passes needed and limit

    def __init__(self, experiment, form: str, kernel: str = "blas"):
        if form not in ("moment", "per-sample") or kernel not in ("blas", "fused"):
            raise ValueError(f"form={form!r}, kernel={kernel!r}: choose 'moment' or 'per-sample', 'blas' or 'fused'")
        self.form, self.kernel, self.widths, self.runs = form, kernel, experiment.widths, experiment.runs
        self.batch = experiment.batch_size
        item = torch.finfo(experiment.torch_dtype).bits // 8
        on_cpu = torch.device(experiment.device).type == "cpu"
        self.chunk = cost.chunk_rows(self.widths, item) if on_cpu else None
        self._end: tuple[torch.Tensor, torch.Tensor] | None = None  # (W[0], residual after the last call)

    def end(self, W) -> torch.Tensor | None:
        """The residual of W after the last call, when that call computed it (per-sample form)."""
        return self._end[1] if self._end is not None and self._end[0] is W[0] else None

    def window(self, rows: int) -> int:
        return cost.check_window(self.widths, self.batch, rows, self.form)

    def __call__(self, W, Syx, table, idx, lr, residual, needed=None, limit=None) -> None:
        k, rows = idx.shape[0], W[0].shape[0]
        needed = np.ones(k, dtype=bool) if needed is None else np.asarray(needed, dtype=bool)
        SyxT = Syx.mT.contiguous()
        lrs = np.broadcast_to(lr.reshape(-1).cpu().numpy() if isinstance(lr, torch.Tensor) else lr, (rows,))
        sparse = self.form == "per-sample" and not needed.all()
        saved = [w.clone() for w in W] if sparse and limit is not None and k > 1 else None
        known = self.end(W)
        if sparse:
            residual.zero_()
            residual[0] = known if known is not None else chain_norm(W, SyxT)
            needed = needed.copy()
            needed[0] = False
        self._end = None
        if self.kernel == "fused":
            per_sample = self.form == "per-sample"
            fused.advance(W, Syx, table, idx, _lr(lrs, W[0]), residual, per_sample=per_sample, needed=needed)
        else:
            self._advance(W, SyxT, table, idx, lrs, residual, needed)
        if sparse:
            end = chain_norm(W, SyxT)
            self._end = (W[0], end)
            if saved is not None:
                self._replay(saved, Syx, table, idx, lrs, residual, end, limit)

    def _advance(self, W, SyxT, table, idx, lrs, residual, needed) -> None:
        rows, R = W[0].shape[0], self.runs
        configs, chunk = rows // R, self.chunk or rows
        gd = [w[0::R] for w in W]  # run 0 of every config: moment form, G = E
        for g in range(0, configs, chunk):
            block = slice(g, min(g + chunk, configs))
            lr = _lr(lrs[0::R][block], W[0])
            moment_steps([w[block] for w in gd], SyxT, None, None, lr, residual[:, 0::R][:, block])
        if R == 1:
            return
        if self.form == "moment":
            Sxx, N = table.moments(idx)
        for c in range(configs):
            for j in range(1, R, chunk):
                part = slice(c * R + j, c * R + min(j + chunk, R))
                Wc, runs = [w[part] for w in W], slice(j - 1, min(j + chunk, R) - 1)
                if self.form == "moment":
                    Nc = None if N is None else N[:, 1:][:, runs]
                    moment_steps(Wc, SyxT, Sxx[:, 1:][:, runs], Nc, float(lrs[part.start]), residual[:, part])
                else:
                    args = (table.xt, table.yt, idx[:, runs], float(lrs[part.start]), residual[:, part], needed)
                    per_sample_steps(Wc, SyxT, *args)

    def _replay(self, saved, Syx, table, idx, lrs, residual, end, limit) -> None:
        """Rows past ``limit`` (or non-finite) at a computed loss: again from ``saved`` with the
        loss at every step, so the caller sees the first step past the bound."""
        bad = ~torch.isfinite(end) | (end > limit)
        bad |= (~torch.isfinite(residual) | (residual > limit)).any(0)
        k, R = idx.shape[0], self.runs
        for row in torch.nonzero(bad).flatten().tolist():
            if row % R == 0:
                continue  # GD rows: moment form, every step's loss is already there
            W, run, lr = [w[row : row + 1].clone() for w in saved], row % R, float(lrs[row])
            out = torch.empty(k, 1, dtype=residual.dtype, device=residual.device)
            if self.kernel == "fused":
                fused.advance(W, Syx, table, idx, lr, out, run_of=[run], per_sample=True)
            else:
                per_sample_steps(W, Syx.mT, table.xt, table.yt, idx[:, run - 1 : run], lr, out, np.ones(k, bool))
            residual[:, row] = out[:, 0]


def _lr(lrs: np.ndarray, like: torch.Tensor):
    if (lrs == lrs[0]).all():
        return float(lrs[0])
    return torch.tensor(np.array(lrs), dtype=like.dtype, device=like.device).view(-1, 1, 1)
