"""Analysis once: the spectra every GD-vs-SGD claim reads, computed in one pass per trajectory
and stored in the trajectory cache beside it (``TrajectoryCache.analysis``, kind "analysis",
keyed like the trajectory: same experiment, same train keyword arguments).

For a Trajectory with weights W_l (R, K, d_l, d_{l-1}) (R runs, K checkpoints) it holds

- ``svals[(i, j)]``: (R, K, min(d_j, d_{i-1})) descending singular values of every partial
  product P_ij = W_j ... W_i (protocol 1.1 step 2, 1.3 step 2), 1 <= i <= j <= L;
- ``end_to_end``: (R, K, d_L, d_0), W = P_1L;
- ``mode_coefficients``: (R, K, d_L, d_0), U^T W V in the teacher's singular bases (diagonal:
  mode strengths u_alpha; off-diagonal: the cross terms of mode decoupling).

SVD grouping (issue #15 item 3; measured in tests/test_analysis.py::test_grouping_choice_measured,
0.93x the time of grouping by shape at NTK widths): the products of one chain P_i. and one shape
go to one batched ``svdvals`` call, and a wide product is transposed so it joins the tall products
of the transposed shape (sigma(P) = sigma(P^T)): fewer, larger LAPACK batches
(:func:`dlncheck.spectra.grouped_singular_values`); one chain's products are held at a time.
Singular values come from ``torch.linalg.svdvals`` (never eigvalsh of a Gram matrix, which
squares the condition number and loses values below ~1e-8 sigma_1, where rank floors sit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dlncheck.spectra import end_to_end, product_singular_values

Key = tuple[int, int]


@dataclass(frozen=True)
class Analysis:
    """Singular values of every P_ij, the end-to-end map and its mode coefficients, per
    (run, checkpoint). ``svals`` is keyed (i, j), 1-based."""

    svals: dict[Key, torch.Tensor]
    end_to_end: torch.Tensor
    mode_coefficients: torch.Tensor

    @property
    def depth(self) -> int:
        return max(j for _, j in self.svals)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Named arrays for np.savez (``svals_i_j``, ``end_to_end``); the mode coefficients are
        not stored: :meth:`from_arrays` recomputes them from the end-to-end map exactly as
        :func:`analyze` does (the same product, so the same bits)."""
        arrays = {f"svals_{i}_{j}": s.cpu().numpy() for (i, j), s in self.svals.items()}
        return arrays | {"end_to_end": self.end_to_end.cpu().numpy()}

    @classmethod
    def from_arrays(cls, arrays, teacher, device: str | torch.device = "cpu") -> Analysis:
        """Inverse of :meth:`to_arrays`, with the mode coefficients of ``teacher``."""

        def t(name):
            return torch.from_numpy(np.asarray(arrays[name])).to(device)

        pairs = (name.split("_")[1:] for name in arrays if name.startswith("svals_"))
        keys = sorted((int(i), int(j)) for i, j in pairs)
        if not keys:
            raise ValueError("arrays hold no 'svals_i_j' entries: not an Analysis written by to_arrays()")
        W = t("end_to_end")
        return cls({k: t(f"svals_{k[0]}_{k[1]}") for k in keys}, W, _teacher_modes(W, teacher))


def analyze(trajectory, transpose: bool = True) -> Analysis:
    """The :class:`Analysis` of a Trajectory in one pass: the partial products' singular values a
    chain P_i. at a time (spectra.product_singular_values, grouped up to a transpose), the end-to-end
    map W = W_L ... W_1 and U^T W V for the mode coefficients."""
    weights = trajectory.weights
    if not all(torch.isfinite(w).all() for w in weights):
        raise ValueError(
            "trajectory weights hold NaN (checkpoints not reached, per-run grid) or inf "
            "(divergence): analyze() needs a shared, finite checkpoint grid"
        )
    W = end_to_end(weights)
    return Analysis(product_singular_values(weights, transpose), W, _teacher_modes(W, trajectory.teacher))


def _teacher_modes(W: torch.Tensor, teacher) -> torch.Tensor:
    """U^T W V in the teacher's singular bases (diagonal: mode strengths)."""
    U, V = teacher.U.to(W), teacher.V.to(W)
    return U.mT @ W @ V
