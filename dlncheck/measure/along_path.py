"""GD-vs-SGD end-to-end maps along the path at matched progress, checked against the first-order mean
offset of :mod:`dlncheck.theory.path_offset` (protocol "Function space along the path"; issue #26):
the one code path of the function-space claim's along-path assertion and of its power test.

Every run is read at GD's progress on GD's checkpoints (:func:`dlncheck.measure.progress.matched_maps`),
and so are the two predicted paths (GD's and the mean SGD path); compared are GD's checkpoints on a
rise (theory.path_offset.compared_levels) that every run and the predicted mean path reach. At equal
time (``matched=False``) every checkpoint after t = 0 is compared. Distances are relative to ||M||_F (theory.path_offset, "Scale").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dlncheck.measure.progress import matched_maps
from dlncheck.theory import path_offset
from dlncheck.theory.sgd import truncation_tolerance


class NotCompared(ValueError):
    """The init has no GD checkpoint to compare along the path (theory.path_offset item 4: at matched
    progress only checkpoints on a rise, reached by every run, are compared); the message says why.
    The claim reports such an init as not compared along the path, its end still asserted."""


@dataclass(frozen=True)
class AlongPath:
    """One init read along the path: ``levels`` (K,) bool, the GD checkpoints compared; ``sgd`` (S, k, ...)
    the SGD runs' maps at GD's progress there, ``gd`` (k, ...) GD's, ``offset`` (k, ...) the predicted
    o_k, ``gd_error`` (k, ...) e_kj and ``atol`` the round-off a of the band; ``check``
    theory.path_offset.path_check's result; ``scale`` ||M||_F."""

    levels: torch.Tensor
    sgd: torch.Tensor
    gd: torch.Tensor
    offset: torch.Tensor
    gd_error: torch.Tensor
    atol: float
    check: dict
    scale: float

    def relative(self, x: torch.Tensor) -> torch.Tensor:
        """(k,): ||x_k||_F / ||M||_F per compared level of a (k, ...) stack."""
        return x.flatten(1).norm(dim=1) / self.scale


def along_path(W, predicted, times, experiment, inits: int, matched: bool = True) -> AlongPath:
    """The reading and check of one init: ``W`` (R, K, d_L, d_0) its runs' end-to-end maps (row 0 GD)
    on checkpoint ``times`` (K,), ``predicted`` (2, K, d_L, d_0) theory.path_offset.mean_path_maps of
    that init on the same checkpoints, ``experiment`` the init's Experiment (teacher, truncation
    tolerance h, depth and widths for the round-off) and ``inits`` the case's number of inits:
    N = inits x compared levels x entries (theory.path_offset items 3-4). ``matched``: every run read
    at GD's progress, on GD's checkpoints on a rise; False: every run at GD's checkpoint times, on every
    checkpoint after t = 0 (theory.path_offset item 5). Raises :class:`NotCompared` when no checkpoint is left
    to compare."""
    teacher, h = experiment.teacher, truncation_tolerance(experiment)
    predicted = predicted.to(W)
    if matched:
        U, V, s = teacher.U, teacher.V, teacher.s[: teacher.rank]
        data, pred = matched_maps(W, times, U, V, s), matched_maps(predicted, times, U, V, s)
        rise = path_offset.compared_levels(data.progress[0], h)
        rise[0] = False
        if not bool(rise.any()):
            raise NotCompared(f"no GD checkpoint after t = 0 lies on a rise (frac(p) in [h, 1 - h], h = {h:.3g})")
        levels = ~(data.unmatched | pred.unmatched) & rise
        sgd_maps, mean_map = data.end_to_end[1:], pred.end_to_end[1]
    else:
        levels = torch.ones(W.shape[1], dtype=torch.bool)
        sgd_maps, mean_map = W[1:], predicted[1]
    levels[0] = False
    if not bool(levels.any()):
        raise NotCompared(
            "no GD checkpoint after t = 0 is left to compare (at matched progress: none on a rise is reached by "
            "every run and the predicted mean path)"
        )
    gd = W[0, levels]
    offset = (mean_map - predicted[0])[levels]
    gd_error = (predicted[0, levels] - gd).abs()
    scale = float(torch.linalg.vector_norm(teacher.s.to(W)))
    atol = path_offset.roundoff(experiment.depth, max(experiment.widths), scale)
    check = path_offset.path_check(sgd_maps[:, levels], gd, offset, gd_error, h, inits * gd.numel(), atol)
    return AlongPath(levels, sgd_maps[:, levels], gd, offset, gd_error, atol, check, scale)


__all__ = ["AlongPath", "NotCompared", "along_path"]
