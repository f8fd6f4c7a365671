"""Figure building blocks shared by every claim: one style, bands, pattern heatmaps.

All figures use the non-interactive Agg backend; ``claim.figure`` saves and closes them.
"""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

STYLE = {
    "figure.dpi": 150,
    "savefig.dpi": 150,
    "svg.fonttype": "none",
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
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


def figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] | None = None,
           **subplot_kw):
    """A styled (fig, axes) pair; ``axes`` is squeezed like plt.subplots.

    Fixed layout (no layout engine: constrained_layout re-solves at every draw and is slow):
    margins and gaps sized for a title, axis labels and a colour bar per panel; the saved
    image is cropped to its content (``bbox_inches="tight"``), so nothing is clipped.
    """
    size = size or (4.6 * ncols, 3.6 * nrows)
    gaps = {"wspace": 0.45, "hspace": 0.6, "left": 0.1, "right": 0.95, "bottom": 0.12, "top": 0.88}
    gaps |= subplot_kw.pop("gridspec_kw", {})
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=True, gridspec_kw=gaps,
                                 **subplot_kw)
    return fig, axes


PAD_INCHES = 0.1   # margin kept around the content when the image is cropped to it (as bbox "tight")
PNG_COMPRESS = 1   # zlib level of the PNGs: level 6 (PIL's default) costs ~5x more for ~15% smaller files


def save_figure(fig, path, *, dpi: int = 150, thumb_width: int = 360, svg: bool = True) -> None:
    """Write ``path`` (PNG at ``dpi``), the same figure as SVG beside it (for papers; unless
    ``svg`` is false) and a thumbnail ``<stem>.thumb.png`` at most ``thumb_width`` px wide,
    each atomically, all cropped to the content plus ``PAD_INCHES``.

    The figure is drawn once by Agg: the PNG is that buffer cropped to the tight box (no second
    draw to find the box), encoded by PIL at ``PNG_COMPRESS``; the thumbnail is the same buffer
    downscaled (not re-rendered); the SVG is the only second draw, given the box already found.
    Content outside the figure (which cropping would clip) falls back to matplotlib's own
    tight-box PNG. Measured cost per figure: README, "Performance".
    """
    from pathlib import Path

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox
    from PIL import Image

    from dlncheck import atomic

    path = Path(path)
    with plt.rc_context(STYLE):
        fig.set_dpi(dpi)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        content = fig.get_tightbbox(canvas.get_renderer())
        box = content.padded(PAD_INCHES)
        inside = Bbox.from_bounds(0, 0, *fig.get_size_inches())
        if _contains(inside, content):
            crop = Bbox.intersection(box, inside)
            height = canvas.get_width_height()[1]
            x0, x1 = int(crop.x0 * dpi), int(np.ceil(crop.x1 * dpi))
            y0, y1 = height - int(np.ceil(crop.y1 * dpi)), height - int(crop.y0 * dpi)
            image = Image.fromarray(np.asarray(canvas.buffer_rgba())[y0:y1, x0:x1, :3])
            atomic.atomic_write(path, lambda tmp: image.save(tmp, format="PNG", dpi=(dpi, dpi),
                                                             compress_level=PNG_COMPRESS))
        else:
            atomic.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches=box))
            image = Image.open(path).convert("RGB")
        if svg:
            atomic.atomic_write(path.with_suffix(".svg"), lambda tmp: fig.savefig(
                tmp, format="svg", bbox_inches=box, metadata={"Date": None}))

    scale = min(1.0, thumb_width / image.width)
    thumb = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.Resampling.BILINEAR, reducing_gap=2.0) if scale < 1 else image
    atomic.atomic_write(path.with_name(f"{path.stem}.thumb.png"),
                        lambda tmp: thumb.quantize(256).save(tmp, format="PNG", compress_level=PNG_COMPRESS))


def _contains(outer, inner) -> bool:
    return outer.x0 <= inner.x0 and outer.y0 <= inner.y0 and inner.x1 <= outer.x1 and inner.y1 <= outer.y1


def mark_failing(ax, x, y, failing, *, label: str = "fails the assertion", color: str = "tab:red"):
    """Ring the points ``(x[k], y[k])`` where ``failing[k]`` is true (checkpoints whose assertion
    fails); draws nothing, and adds no legend entry, when none fails."""
    x, y, failing = _numpy(x).ravel(), _numpy(y).ravel(), _numpy(failing).ravel().astype(bool)
    if not failing.any():
        return None
    return ax.scatter(x[failing], y[failing], s=60, facecolors="none", edgecolors=color,
                      linewidths=1.5, zorder=5, label=label)


def band(ax, x, center, lo=None, hi=None, *, label: str | None = None, color=None,
         alpha: float = 0.25, **line_kw):
    """A line with an optional shaded band [lo, hi] (e.g. a bootstrap CI over SGD runs)."""
    x, center = _numpy(x), _numpy(center)
    (line,) = ax.plot(x, center, label=label, color=color, **line_kw)
    if lo is not None and hi is not None:
        ax.fill_between(x, _numpy(lo), _numpy(hi), color=line.get_color(), alpha=alpha,
                        linewidth=0)
    return line


def heatmap(ax, matrix, *, title: str = "", cbar_label: str = "", vmin=None, vmax=None,
            fmt: str = "{:.0f}", cmap: str = "viridis", annotate: bool = True):
    """An L x L upper-triangular pattern (entry [i-1, j-1] = value for P_ij), i rows, j cols.

    Entries below the diagonal are masked; each cell is annotated with ``fmt``.
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
    if annotate:
        lo, hi = masked.min(), masked.max()
        mid = (lo + hi) / 2 if hi > lo else hi
        for i in range(L):
            for j in range(i, L):
                if np.isfinite(m[i, j]):
                    ax.text(j, i, fmt.format(m[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if m[i, j] < mid else "black")
    cbar = ax.figure.colorbar(im, ax=ax, shrink=0.8)
    cbar.set_label(cbar_label)
    return im


def shade_windows(ax, windows: Sequence[tuple[float, float]], *, label: str = "escape window",
                  color: str = "tab:red", alpha: float = 0.12):
    """Shade time windows such as [t_esc - Delta, t_esc + Delta]; one legend entry."""
    for n, (t0, t1) in enumerate(windows):
        ax.axvspan(t0, t1, color=color, alpha=alpha, linewidth=0, label=label if n == 0 else None)


def mark_times(ax, times, *, label: str | None = None, color: str = "tab:gray",
               linestyle: str = "--"):
    """Vertical lines at given times (e.g. theory escape times); one legend entry."""
    for n, t in enumerate(_numpy(times).ravel()):
        if np.isfinite(t):
            ax.axvline(t, color=color, linestyle=linestyle, linewidth=1,
                       label=label if n == 0 else None)
