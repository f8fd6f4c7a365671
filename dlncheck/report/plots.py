"""Figure building blocks shared by every claim: one style, the figure layout, bands, failing
points, pattern heatmaps and colour bars.

All figures use the non-interactive Agg backend; ``claim.figure`` saves them
(:func:`dlncheck.report.figure_files.save_figure`) and closes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType  # matplotlib >= 3.10

STYLE: dict[RcKeyType, Any] = {
    "figure.dpi": 150,
    "savefig.dpi": 150,
    "svg.fonttype": "none",
    "savefig.bbox": "tight",
    "text.hinting": "none",  # unhinted glyphs (as matplotlib's own test images): 18-20% less figure time
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titley": 1.0,  # fixed title position: no per-draw search above the tick labels
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "lines.linewidth": 1.6,
}
GD_COLOR = "black"
SGD_COLOR = "tab:orange"


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


MARGIN_INCHES = (0.8, 0.2, 0.65, 0.45)  # left, right, bottom, top: room for $10^{-3}$ ticks and labels


def figure(
    nrows: int = 1,
    ncols: int = 1,
    size: tuple[float, float] | None = None,
    margins: dict[str, float] | None = None,
    **subplot_kw,
):
    """A styled (fig, axes) pair; ``axes`` is squeezed like plt.subplots.

    Fixed layout (no layout engine: constrained_layout re-solves at every draw and is slow):
    margins in inches (MARGIN_INCHES, or per side in ``margins``, e.g. ``{"right": 3.0}`` for a
    legend outside the axes) and gaps sized for a title, log-axis tick labels, axis labels and a
    colour bar per panel. Everything drawn must fit inside the canvas: the saved image is cropped
    to its content (spare margin costs nothing), while content past the edge costs a second draw.
    """
    size = size or (4.6 * ncols, 3.6 * nrows)
    w, h = size
    inches = dict(zip(("left", "right", "bottom", "top"), MARGIN_INCHES)) | (margins or {})
    gaps = {
        "wspace": 0.45,
        "hspace": 0.6,
        "left": inches["left"] / w,
        "right": 1 - inches["right"] / w,
        "bottom": inches["bottom"] / h,
        "top": 1 - inches["top"] / h,
    }
    gaps |= subplot_kw.pop("gridspec_kw", {})
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=True, gridspec_kw=gaps, **subplot_kw)
    return fig, axes


def _share_mathtext_parses(max_entries: int = 4096) -> None:
    """matplotlib caches each parsed ``$...$`` string per renderer (``lru_cache`` on a method,
    keyed by the parser instance), so every new figure re-parses its log-axis tick labels
    ($10^{-3}$, ...) with pyparsing, ~10 ms each and a third of a figure's draw. One cache shared
    by all parsers of an output type ("raster"/"vector") returns the same parse for the same key
    (string, dpi, font, antialiasing, hinting). Left alone if matplotlib's internals differ."""
    from matplotlib.mathtext import MathTextParser

    global MATPLOTLIB_PARSE_CACHED
    MATPLOTLIB_PARSE_CACHED = getattr(MathTextParser, "_parse_cached", None)
    parse = getattr(MATPLOTLIB_PARSE_CACHED, "__wrapped__", None)
    if parse is None:
        return
    shared: dict = {}

    def parse_cached(self, s, dpi, prop, antialiased, load_glyph_flags):
        key = (self._output_type, s, dpi, prop, antialiased, load_glyph_flags)
        if key not in shared:
            if len(shared) >= max_entries:
                shared.clear()
            shared[key] = parse(self, s, dpi, prop, antialiased, load_glyph_flags)
        return shared[key]

    MathTextParser._parse_cached = parse_cached  # type: ignore[attr-defined]  # a private method, replaced


MATPLOTLIB_PARSE_CACHED = None  # matplotlib's own per-parser cache (the benchmark's baseline restores it)
_share_mathtext_parses()


def mark_failing(ax, x, y, failing, *, label: str = "fails the assertion", color: str = "tab:red"):
    """Ring the points ``(x[k], y[k])`` where ``failing[k]`` is true (checkpoints whose assertion
    fails); draws nothing, and adds no legend entry, when none fails."""
    x, y, failing = _numpy(x).ravel(), _numpy(y).ravel(), _numpy(failing).ravel().astype(bool)
    if not failing.any():
        return None
    return ax.scatter(
        x[failing], y[failing], s=60, facecolors="none", edgecolors=color, linewidths=1.5, zorder=5, label=label
    )


def band(ax, x, center, lo=None, hi=None, *, label: str | None = None, color=None, alpha: float = 0.25, **line_kw):
    """A line with an optional shaded band [lo, hi] (e.g. a bootstrap CI over SGD runs)."""
    x, center = _numpy(x), _numpy(center)
    (line,) = ax.plot(x, center, label=label, color=color, **line_kw)
    if lo is not None and hi is not None:
        ax.fill_between(x, _numpy(lo), _numpy(hi), color=line.get_color(), alpha=alpha, linewidth=0)
    return line


def heatmap(
    ax,
    matrix,
    *,
    title: str = "",
    cbar_label: str | None = "",
    vmin=None,
    vmax=None,
    fmt: str = "{:.0f}",
    cmap: str = "viridis",
    annotate: bool = True,
):
    """An L x L upper-triangular pattern (entry [i-1, j-1] = value for P_ij), i rows, j cols.

    Entries below the diagonal are masked; each cell is annotated with ``fmt``. A colour bar is
    drawn beside the panel unless ``cbar_label`` is None (panels sharing one scale share one bar:
    :func:`shared_colorbar`).
    """
    m = _numpy(matrix).astype(float)
    L = m.shape[0]
    masked = np.ma.masked_where(np.tril(np.ones_like(m, dtype=bool), -1), m)
    im = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(L), [str(j + 1) for j in range(L)])
    ax.set_yticks(range(L), [str(i + 1) for i in range(L)])
    ax.set_xlabel("j (last layer of P_ij)")
    ax.set_ylabel("i (first layer of P_ij)")
    ax.grid(False)
    ax.set_title(title)
    if annotate:  # text colour from the cell's own luminance (Rec. 601 weights), for any colormap
        for i in range(L):
            for j in range(i, L):
                if np.isfinite(m[i, j]):
                    r, g, b, _ = im.cmap(im.norm(m[i, j]))
                    ax.text(
                        j,
                        i,
                        fmt.format(m[i, j]),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black",
                    )
    if cbar_label is not None:
        ax.figure.colorbar(im, ax=ax, shrink=0.8).set_label(cbar_label)
    return im


def shared_colorbar(im, axes, label: str, location: str = "right"):
    """One colour bar for panels drawn on the same scale (same norm and colormap as ``im``),
    beside ``axes`` at ``location``: fewer axes to lay out and draw than a bar per panel."""
    return im.figure.colorbar(
        im,
        ax=list(np.ravel(axes)),
        shrink=0.8,
        label=label,
        location=location,
        **({"aspect": 30, "pad": 0.08} if location == "bottom" else {}),
    )


def shade_windows(
    ax,
    windows: Sequence[tuple[float, float]],
    *,
    label: str = "escape window",
    color: str = "tab:red",
    alpha: float = 0.12,
):
    """Shade time windows such as [t_esc - Delta, t_esc + Delta]; one legend entry. Windows with a
    non-finite end (an escape theory does not predict) are not drawn."""
    finite = [(t0, t1) for t0, t1 in windows if np.isfinite(t0) and np.isfinite(t1)]
    for n, (t0, t1) in enumerate(finite):
        ax.axvspan(t0, t1, color=color, alpha=alpha, linewidth=0, label=label if n == 0 else None)


def mark_times(ax, times, *, label: str | None = None, color: str = "tab:gray", linestyle: str = "--"):
    """Vertical lines at given times (e.g. theory escape times); one legend entry."""
    for n, t in enumerate(_numpy(times).ravel()):
        if np.isfinite(t):
            ax.axvline(t, color=color, linestyle=linestyle, linewidth=1, label=label if n == 0 else None)


WORST_COLOR = "tab:red"
NAMED_INITS = 8  # at most this many init lines are named one by one in a legend


def per_init_lines(ax, curves, names: Sequence[str], *, worst: str | None = None, what: str = "", **line_kw):
    """One line per init, ``curves`` [(x, y)] in the order of ``names``: each in its own colour and
    named in the legend when there are at most ``NAMED_INITS``; else all in grey, one legend entry.
    The ``worst`` init (a name) is drawn on top, thicker, in ``WORST_COLOR``, as "worst: <name>"."""
    named = len(names) <= NAMED_INITS
    for k, ((x, y), name) in enumerate(zip(curves, names)):
        if name == worst:
            continue
        label = (
            f"{what}{name}"
            if named
            else (f"{what}other inits ({len(names) - (worst is not None)})" if k == 0 else None)
        )
        ax.plot(_numpy(x), _numpy(y), color=f"C{k % 10}" if named else "0.6", label=label, **({"lw": 1} | line_kw))
    if worst is not None:
        x, y = curves[list(names).index(worst)]
        ax.plot(_numpy(x), _numpy(y), color=WORST_COLOR, lw=2, zorder=3, label=f"{what}worst: {worst}")
