"""What every figure gets before it is saved (:func:`finish`, called by
:func:`dlncheck.report.figure_files.save_figure`), so every claim family's figures show what is
asserted without each claim repeating it:

- integer ticks on an axis whose plotted data are all whole numbers (an init seed, a sign, a rank);
- a log axis whose data span more than float64 can resolve against its largest value is cut at
  ``EPS * max`` (round-off relative to the largest value drawn), and the axis label says so;
- GD (lines in ``plots.GD_COLOR``) drawn beneath the SGD lines, so SGD stays visible where the two
  coincide, and where they coincide a legend entry "GD" states the largest distance from it;
- a legend that covers plotted data moves out of the axes, beside the figure.
"""

from __future__ import annotations

import numpy as np
from matplotlib.collections import LineCollection, PathCollection, PolyCollection
from matplotlib.colors import same_color
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from dlncheck.report.plots import GD_COLOR

EPS = float(np.finfo(np.float64).eps)
GD_ZORDER = 1.5  # below the default 2 of lines: SGD is drawn over GD
#: lines closer than this fraction of the axis (a line's width on a 3 in axes) look like one line
COINCIDE = 0.01


def _lines(ax) -> list[Line2D]:
    return [ln for ln in ax.get_lines() if ln.get_visible() and len(np.atleast_1d(ln.get_xdata())) > 1]


def _values(ax, axis: str) -> np.ndarray:
    """Every finite value the axes' lines, scatter points and bars plot along ``axis`` ("x"/"y")
    (a bar counts by its centre and its top)."""
    k = 0 if axis == "x" else 1
    parts = [np.asarray(ln.get_xydata(), dtype=float)[:, k] for ln in ax.get_lines() if ln.get_visible()]
    parts += [
        np.asarray(c.get_offsets(), dtype=float).reshape(-1, 2)[:, k]
        for c in ax.collections
        if isinstance(c, PathCollection) and c.get_visible()
    ]
    bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_visible()]
    if bars:
        parts.append(np.array([p.get_x() + p.get_width() / 2 if k == 0 else p.get_y() + p.get_height() for p in bars]))
    data = np.concatenate(parts) if parts else np.empty(0)
    return data[np.isfinite(data)]


def integer_ticks(ax) -> None:
    """Whole-number ticks on a linear axis whose plotted values are all whole numbers."""
    if ax.images:  # heatmaps set their own ticks
        return
    for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
        values = _values(ax, name)
        if axis.get_scale() == "linear" and values.size and np.all(values == np.round(values)):
            axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # one tick for a constant


def log_floor(ax) -> None:
    """Cut a log axis at ``EPS`` times its largest plotted value when the data reach below it."""
    for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
        values = _values(ax, name)
        values = values[values > 0]
        if axis.get_scale() != "log" or not values.size or values.min() >= EPS * values.max():
            continue
        floor = EPS * values.max()
        getter, setter = (ax.get_xlim, ax.set_xlim) if name == "x" else (ax.get_ylim, ax.set_ylim)
        lo, hi = getter()
        setter((floor, hi) if lo <= hi else (hi, floor))
        label = axis.get_label_text()
        axis.set_label_text(
            f"{label}\n(cut at float64 round-off ε·max = {floor:.1e})" if label else f"ε·max = {floor:.1e}"
        )


def gd_beneath_sgd(ax) -> None:
    """Draw GD's lines beneath the others; when the lines on GD's times coincide with the "GD"
    line to the eye (within ``COINCIDE`` of the axis), its legend entry states their largest
    distance from it, since the lines no longer show it."""
    lines = _lines(ax)
    gd = [ln for ln in lines if same_color(ln.get_color(), GD_COLOR)]
    if not gd or len(gd) == len(lines):
        return
    for ln in gd:
        ln.set_zorder(GD_ZORDER)
    labelled = [ln for ln in gd if ln.get_label() == "GD"]
    if len(labelled) != 1:
        return
    x, y = (np.asarray(v, dtype=float) for v in labelled[0].get_data())
    log = ax.yaxis.get_scale() == "log"
    lo, hi = sorted(ax.get_ylim())
    span = np.log10(hi / lo) if log and lo > 0 else hi - lo
    gaps = []
    for ln in lines:
        lx, ly = (np.asarray(v, dtype=float) for v in ln.get_data())
        if ln in gd or lx.shape != x.shape or not np.array_equal(lx, x):
            continue
        ok = np.isfinite(ly) & np.isfinite(y) & ((ly > 0) & (y > 0) if log else True)
        if ok.any():
            gaps.append(np.max(np.abs(np.log10(ly[ok] / y[ok]) if log else ly[ok] - y[ok])))
    if not gaps or max(gaps) > COINCIDE * span:
        return
    label = f"GD (others within {10 ** max(gaps) - 1:.1e} rel.)" if log else f"GD (others within {max(gaps):.2g})"
    labelled[0].set_label(label)
    legend = ax.get_legend()
    for text in legend.get_texts() if legend is not None else []:
        if text.get_text() == "GD":
            text.set_text(label)


def _covers_data(ax, box) -> bool:
    """Whether the display box ``box`` meets a data line, band, scatter point or bar of ``ax``."""
    for ln in _lines(ax):
        if ln.get_transform().transform_path(ln.get_path()).intersects_bbox(box, filled=False):
            return True
    for coll in ax.collections:
        if not coll.get_visible():
            continue
        if isinstance(coll, (PolyCollection, LineCollection)):
            trans, filled = coll.get_transform(), isinstance(coll, PolyCollection)
            if any(trans.transform_path(p).intersects_bbox(box, filled=filled) for p in coll.get_paths()):
                return True
        else:
            points = coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), dtype=float).reshape(-1, 2))
            if points.size and np.any(
                (points[:, 0] >= box.x0)
                & (points[:, 0] <= box.x1)
                & (points[:, 1] >= box.y0)
                & (points[:, 1] <= box.y1)
            ):
                return True
    renderer = ax.figure.canvas.get_renderer()
    return any(p.get_visible() and p.get_window_extent(renderer).overlaps(box) for p in ax.patches)


def legends_outside(fig, renderer) -> bool:
    """Move every axes legend that covers plotted data out of its axes: beside it when nothing is
    to its right, else below it when nothing is beneath, else beside the figure's right edge.
    Returns whether any moved (the caller draws again)."""
    boxes = [ax.get_position() for ax in fig.axes]
    right = max((b.x1 for b in boxes), default=1.0)
    stack = fig.bbox.height
    moved = False
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None or not legend.get_visible():
            continue
        box = legend.get_window_extent(renderer)
        twins = [other for other in fig.axes if other.bbox.bounds == ax.bbox.bounds]  # twinx / twiny share the box
        if not any(_covers_data(other, box) for other in twins):
            continue
        pos, tight = ax.get_position(), ax.get_tightbbox(renderer)
        free_right = not any(b.x0 >= pos.x1 and b.y1 > pos.y0 and b.y0 < pos.y1 for b in boxes)
        free_below = not any(b.y1 <= pos.y0 and b.x1 > pos.x0 and b.x0 < pos.x1 for b in boxes)
        if free_right:
            anchor, loc = (tight.x1 + 6, ax.bbox.y1), "upper left"
        elif free_below:
            anchor, loc = ((ax.bbox.x0 + ax.bbox.x1) / 2, tight.y0 - 4), "upper center"
        else:
            anchor, loc = (right * fig.bbox.width + 6, stack), "upper left"
            stack -= legend.get_window_extent(renderer).height + 8
        legend.set_bbox_to_anchor((anchor[0] / fig.bbox.width, anchor[1] / fig.bbox.height), transform=fig.transFigure)
        legend.set_loc(loc)
        moved = True
    return moved


def finish(fig) -> None:
    """The steps before the first draw: integer ticks, log floors, GD beneath SGD."""
    for ax in fig.axes:
        integer_ticks(ax)
        log_floor(ax)
        gd_beneath_sgd(ax)
