"""Figure cost (issue #15 item 2): ``figure_files.save_figure`` per figure against the previous save
(tight box found by a second layout pass, SVG always written, matplotlib's per-renderer mathtext
cache), both timed in the same run on the same figure objects, single-threaded."""

import time
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.mathtext import MathTextParser
from matplotlib.transforms import Bbox
from PIL import Image

from dlncheck.report import figure_files, plots
from dlncheck.store import atomic

#: the previous round's style: hinted glyphs (matplotlib's default)
PREVIOUS_STYLE = {key: value for key, value in plots.STYLE.items() if key != "text.hinting"}


def previous_save_figure(fig, path, *, dpi: int = 150, thumb_width: int = 360, svg: bool = True) -> None:
    """The save of the previous round (baseline only): Agg draw, tight box from a layout pass,
    PNG cropped from the buffer, SVG redrawn with the box, thumbnail from the buffer."""
    path = Path(path)
    with plots.plt.rc_context(PREVIOUS_STYLE):
        fig.set_dpi(dpi)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        content = fig.get_tightbbox(canvas.get_renderer())
        box = content.padded(figure_files.PAD_INCHES)
        crop = Bbox.intersection(box, Bbox.from_bounds(0, 0, *fig.get_size_inches()))
        height = canvas.get_width_height()[1]
        x0, x1 = int(crop.x0 * dpi), int(np.ceil(crop.x1 * dpi))
        y0, y1 = height - int(np.ceil(crop.y1 * dpi)), height - int(crop.y0 * dpi)
        image = Image.fromarray(np.asarray(canvas.buffer_rgba())[y0:y1, x0:x1, :3])
        atomic.atomic_write(
            path, lambda tmp: image.save(tmp, format="PNG", dpi=(dpi, dpi), compress_level=figure_files.PNG_COMPRESS)
        )
        if svg:
            atomic.atomic_write(
                path.with_suffix(".svg"),
                lambda tmp: fig.savefig(tmp, format="svg", bbox_inches=box, metadata={"Date": None}),
            )
    figure_files.write_thumbnail(image, path, thumb_width)


#: the previous round's fixed margins (fractions of the figure): log-axis labels overflowed them
PREVIOUS_GAPS = {"left": 0.1, "right": 0.95, "bottom": 0.12, "top": 0.88}


def _figures(previous: bool = False):
    """Five kinds the claims draw: log-time curves with bands, a histogram, 1 x 3 panels of many
    lines, annotated P_ij heatmaps, and a log-log scatter with a marked failing point
    (``previous``: with the previous round's margins)."""
    rng = np.random.default_rng(0)
    if previous:

        def figure(*shape):
            fig, axes = plots.figure(*shape, gridspec_kw=PREVIOUS_GAPS)
            for ax in fig.axes:
                ax._autotitlepos = True  # the previous style searched the title position at each draw
            return fig, axes
    else:
        figure = plots.figure
    t = np.geomspace(1e-3, 1e2, 400)
    fig, ax = figure()
    for k in range(3):
        plots.band(
            ax, t, np.exp(-t / 10**k), 0.9 * np.exp(-t / 10**k), 1.1 * np.exp(-t / 10**k), label=f"$u_{k + 1}(t)$"
        )
    plots.shade_windows(ax, [(0.1, 0.3), (3, 9)])
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="time $t$ = lr $\\times$ step",
        ylabel="$\\|W - M\\|_F$",
        title="loss and escape windows",
    )
    ax.legend(loc="upper right")
    yield fig
    fig, ax = figure()
    ax.hist(rng.standard_normal(4000), bins=400)
    ax.set(xlabel="$\\lambda_{\\min}$", ylabel="count", title="Hessian spectrum")
    yield fig
    fig, axes = figure(1, 3)
    for ax in axes:
        ax.plot(t, np.cumsum(rng.standard_normal((400, 33)), 0), linewidth=0.6)
        ax.set(xscale="log", xlabel="$t$", ylabel="$\\sigma_k(P_{ij})$", title="33 runs")
    yield fig
    fig, axes = figure(2, 3)
    for ax in axes.flat:  # the previous layout: a colour bar per panel; now one shared bar
        im = plots.heatmap(
            ax,
            np.triu(rng.random((4, 4))),
            title="$\\log_{10}\\sigma_{\\min}$",
            fmt="{:.1f}",
            vmin=0,
            vmax=1,
            cbar_label="$\\log_{10}$" if previous else None,
        )
    if not previous:
        plots.shared_colorbar(im, axes, "$\\log_{10}$")
    yield fig
    fig, ax = figure()
    x, y = np.geomspace(1e-3, 1, 12), np.geomspace(1e-6, 1, 12)
    ax.loglog(x, y, "o-", label="measured")
    plots.mark_failing(ax, x, y, y > 0.5)
    ax.set(xlabel="lr", ylabel="$d_\\theta$", title="distance vs lr")
    ax.legend()
    yield fig


def _per_figure(save, folder, rounds, previous=False):
    """Min over ``rounds`` of the CPU seconds each figure's save takes; mean over the figures."""
    figures = list(_figures(previous))
    best = [np.inf] * len(figures)
    for _ in range(rounds):
        for k, fig in enumerate(figures):
            start = time.process_time()
            save(fig, folder / f"fig{k}.png")
            best[k] = min(best[k], time.process_time() - start)
    for fig in figures:
        plots.plt.close(fig)
    return float(np.mean(best)), best


def test_new_save_per_figure_vs_previous(benchmark, tmp_path, monkeypatch):
    """New save (PNG + thumbnail, crop from the pixels, shared mathtext cache, margins that fit,
    fixed title position) vs the previous save and layout with their defaults (SVG on,
    matplotlib's cache, a tight-box fallback wherever log labels overflowed the margins, minor
    ticks on every log axis, a colour bar per heatmap panel, hinted glyphs): measured 3.8-4.9x less
    CPU per figure (docs/performance.md has the latest run's ratio); asserted at least 3x."""
    with monkeypatch.context() as m:  # the baseline runs with matplotlib's own mathtext cache
        m.setattr(MathTextParser, "_parse_cached", plots.MATPLOTLIB_PARSE_CACHED)
        old, old_each = _per_figure(previous_save_figure, tmp_path, rounds=3, previous=True)
    new, new_each = _per_figure(figure_files.save_figure, tmp_path, rounds=3)
    benchmark.pedantic(lambda: _per_figure(figure_files.save_figure, tmp_path, rounds=1), rounds=1, iterations=1)
    benchmark.extra_info.update(
        per_figure_new_s=new, per_figure_previous_s=old, ratio=old / new, new_each=new_each, previous_each=old_each
    )
    print(
        f"per figure: new {new:.3f} s, previous {old:.3f} s, {old / new:.1f}x; "
        f"new {np.round(new_each, 3)}, previous {np.round(old_each, 3)}"
    )
    assert old / new >= 3


def test_crop_keeps_every_label_and_edge_content_falls_back(tmp_path):
    """The PNG is the drawn canvas cropped to its ink plus PAD_INCHES; a label past the canvas
    edge (which the crop would clip) makes save_figure use the tight box, so the PNG grows."""
    fig, ax = plots.figure()
    ax.loglog([1e-3, 1], [1e-6, 1])
    ax.set(xlabel="$t$", ylabel="$\\sigma$", title="t")
    figure_files.save_figure(fig, tmp_path / "in.png")
    with Image.open(tmp_path / "in.png") as inside:  # closed: an open file warns (warnings are errors)
        rgb = np.asarray(inside.convert("RGB"))
    w, h = (np.array(fig.get_size_inches()) * 150).round()
    assert rgb.shape[1] < w and rgb.shape[0] < h  # cropped
    pad = round(figure_files.PAD_INCHES * 150)
    paper = rgb[0, 0]  # the palette PNG (figure_files.PALETTE colours) may store white as 254
    assert (paper >= 250).all() and (rgb[: pad - 1] == paper).all() and (rgb[:, : pad - 1] == paper).all()  # margin
    fig.text(1.05, 0.5, "outside the canvas")
    figure_files.save_figure(fig, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as outside:
        assert outside.width > w
    assert (tmp_path / "out.thumb.webp").exists() and not (tmp_path / "out.svg").exists()
    figure_files.save_figure(fig, tmp_path / "vec.png", svg=True)
    assert (tmp_path / "vec.svg").read_text().count("outside the canvas") == 1
    plots.plt.close(fig)


def test_shared_mathtext_parse_equals_matplotlib(tmp_path):
    """The shared parse cache gives the pixels matplotlib's own cache gives."""

    def pixels():
        fig, ax = plots.figure()
        ax.loglog([1e-3, 1], [1e-6, 1])
        ax.set_title("$\\sigma_{\\min}(P_{13})$")
        fig.set_dpi(100)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        plots.plt.close(fig)
        return np.asarray(canvas.buffer_rgba()).copy()

    shared = pixels()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(MathTextParser, "_parse_cached", plots.MATPLOTLIB_PARSE_CACHED)
        own = pixels()
    assert np.array_equal(shared, own)
