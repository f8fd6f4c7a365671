"""Writing a figure: the PNG cropped to its content, a thumbnail and (with ``--svg``) an SVG, each
atomically, in the shared style of :mod:`dlncheck.report.plots`; the one place figures are written.

Both images are small enough for a report that travels: the full-size image is reduced to a 256-colour
palette (these plots are mostly flat colours and anti-aliased edges) and written as lossless WebP
(the claims' figures, ``<name>.webp``) or PNG (any other path), and the thumbnail is a lossy WebP.

The figure is drawn once by Agg and cropped to the pixels that differ from its background (no
tight-box layout pass); log axes spanning more than a decade drop their unlabelled minor ticks
first. Measured cost per figure: docs/performance.md, "What one figure costs".
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib
import numpy as np
from matplotlib.ticker import NullLocator

from dlncheck.report.figure_finish import finish, legends_outside
from dlncheck.report.plots import STYLE
from dlncheck.store import atomic

PAD_INCHES = 0.1  # margin kept around the content when the image is cropped to it (as bbox "tight")
#: zlib level of the palette PNGs. Measured on 27 claim figures (1.1k x 0.7k px): palette + level 6
#: writes 0.75 MB in 31 ms per figure, against 2.36 MB in 40 ms for the former full-colour level 1
PNG_COMPRESS = 6
PALETTE = 256  # colours of the full-size image
#: lossless WebP of the palette image, libwebp method 1 at effort ("quality") 25. Measured on 40 figures
#: of a quick-tier report: 18.8 kB per figure against 25.7 kB for the palette PNG at level 6, in 1.9 times
#: its encoding time (method 2 at 50: 18.2 kB in 2.7 times; method 0: 39.5 kB); decoded pixels equal
WEBP_METHOD, WEBP_EFFORT = 1, 25
THUMB_SUFFIX = ".thumb.webp"
THUMB_QUALITY = 75  # WebP quality of the thumbnails (shown at 220 px; the full PNG is one click away)


def save_figure(fig, path, *, dpi: int = 150, thumb_width: int | None = 360, svg: bool = False) -> None:
    """Write ``path`` (a 256-colour image at ``dpi``: lossless WebP when ``path`` ends in ``.webp``,
    else PNG), a thumbnail ``<stem>.thumb.webp`` (unless ``thumb_width`` is None) at most ``thumb_width``
    px wide and, when ``svg`` is true (``pytest claims --svg``, for papers), the same figure as
    SVG beside it; each atomically, all cropped to the content plus ``PAD_INCHES``.

    The figure is drawn once by Agg and cropped to the pixels that differ from its background
    (no tight-box layout pass); the thumbnail is the same buffer downscaled. Content that reaches
    the canvas edge, or a legend or text placed beyond it, would be clipped, so such a figure
    falls back to matplotlib's tight-box save.
    Measured cost per figure: docs/performance.md, "What one figure costs".
    """
    from pathlib import Path

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox
    from PIL import Image

    path = Path(path)
    with matplotlib.rc_context(STYLE):
        fig.set_dpi(dpi)
        finish(fig)
        unlabelled_log_minor_ticks_off(fig)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        if legends_outside(fig, canvas.get_renderer()):
            canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())
        rgb = rgba[..., :3]
        box = _content_pixels(rgba, np.round(np.asarray(fig.get_facecolor()) * 255))
        if box is None or _floating_outside(fig, canvas.get_renderer()):  # let matplotlib find the extent
            tight = fig.get_tightbbox(canvas.get_renderer()).padded(PAD_INCHES)
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=dpi, bbox_inches=tight)
            image = Image.open(buffer).convert("RGB")
        else:
            pad = round(PAD_INCHES * dpi)
            (y0, y1), (x0, x1) = [(max(0, a - pad), min(n, b + pad)) for (a, b), n in zip(box, rgb.shape)]
            image = Image.fromarray(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
            height = rgb.shape[0]
            tight = Bbox.from_extents(x0 / dpi, (height - y1) / dpi, x1 / dpi, (height - y0) / dpi)
        palette = image.quantize(PALETTE, method=Image.Quantize.FASTOCTREE)
        encoding: dict[str, Any] = (
            {"format": "WEBP", "lossless": True, "method": WEBP_METHOD, "quality": WEBP_EFFORT}
            if path.suffix == ".webp"
            else {"format": "PNG", "dpi": (dpi, dpi), "compress_level": PNG_COMPRESS}
        )
        atomic.atomic_write(path, lambda tmp: palette.save(tmp, **encoding))
        if svg:
            atomic.atomic_write(
                path.with_suffix(".svg"),
                lambda tmp: fig.savefig(tmp, format="svg", bbox_inches=tight, metadata={"Date": None}),
            )

    if thumb_width is not None:
        write_thumbnail(image, path, thumb_width)


def write_thumbnail(image, path, thumb_width: int) -> None:
    """``<stem>.thumb.webp`` beside ``path`` (a pathlib.Path): the RGB image scaled to at most
    ``thumb_width`` pixels wide, lossy WebP at ``THUMB_QUALITY``."""
    from PIL import Image

    scale = min(1.0, thumb_width / image.width)
    thumb = (
        image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.BILINEAR,
            reducing_gap=2.0,
        )
        if scale < 1
        else image
    )
    atomic.atomic_write(
        path.with_name(f"{path.stem}{THUMB_SUFFIX}"),
        lambda tmp: thumb.save(tmp, format="WEBP", quality=THUMB_QUALITY, method=4),
    )


def unlabelled_log_minor_ticks_off(fig) -> None:
    """Drop the minor ticks (2, ..., 9 x 10^k) of every log axis spanning more than one decade,
    where matplotlib's LogFormatter leaves them unlabelled (``minor_thresholds[0]`` = 1 decade);
    the decade ticks and grid lines still mark the scale. Each tick is a handful of artists
    (~1.5 ms to create, ~1 ms to draw), and these were a third of the claims' figure time.
    Axes of at most one decade keep them: there they carry the labels."""
    for ax in fig.axes:
        for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            if axis.get_scale() == "log" and min(lo, hi) > 0 and abs(np.log10(hi) - np.log10(lo)) > 1:
                axis.set_minor_locator(NullLocator())


def _content_pixels(rgba: np.ndarray, background: np.ndarray):
    """((row0, row1), (col0, col1)) bounding the pixels that differ from the RGBA ``background``,
    or None when some touch the canvas edge (content there may extend past it) or there are none.
    Pixels compare as one 32-bit word each."""
    words = np.ascontiguousarray(rgba).view(np.uint32)[..., 0]
    ink = words != background.astype(np.uint8).view(np.uint32)[0]
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if rows.size == 0:
        return None
    box = ((rows[0], rows[-1] + 1), (cols[0], cols[-1] + 1))
    if box[0][0] == 0 or box[1][0] == 0 or box[0][1] == ink.shape[0] or box[1][1] == ink.shape[1]:
        return None
    return box


def _floating_outside(fig, renderer) -> bool:
    """Whether a legend or free text (placed in figure or axes coordinates, possibly wholly
    outside the canvas, where the pixels cannot show it) leaves the canvas."""
    width, height = fig.canvas.get_width_height()
    floating = [*fig.texts, *fig.legends]
    for ax in fig.axes:
        floating += [*ax.texts, *([ax.get_legend()] if ax.get_legend() else [])]
    for artist in floating:
        if artist.get_visible():
            e = artist.get_window_extent(renderer)
            if e.x0 < 0 or e.y0 < 0 or e.x1 > width or e.y1 > height:
                return True
    return False
