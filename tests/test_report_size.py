"""A report that travels: tables as csv.xz that pandas reads back, palette PNGs, WebP thumbnails."""

import lzma

import numpy as np
import pandas as pd
from PIL import Image

from dlncheck.report import plots
from dlncheck.report.claim import THUMB_WIDTH, Claim
from dlncheck.report.figure_files import PALETTE


def test_tables_are_xz_csv_that_pandas_reads_back_byte_for_byte_reproducible(tmp_path):
    df = pd.DataFrame({"t": np.arange(50, dtype=float), "x": np.linspace(0, 1, 50), "init": ["gaussian#2"] * 50})
    first = Claim("claims/test_t.py::test_t[a]", tmp_path).table(df, "per init")
    again = Claim("claims/test_t.py::test_t[b]", tmp_path).table(df, "per init")
    assert first.name == "per_init.csv.xz" and lzma.decompress(first.read_bytes()).startswith(b"t,x,init\n")
    # %.10g writes 1.0 as "1": a column of whole numbers reads back as integers
    pd.testing.assert_frame_equal(pd.read_csv(first), df, check_exact=False, rtol=5e-10, check_dtype=False)
    assert first.read_bytes() == again.read_bytes()


def test_figures_are_palette_pngs_with_webp_thumbnails(tmp_path):
    claim = Claim("claims/test_t.py::test_t[a]", tmp_path)
    fig, ax = plots.figure()
    rng = np.random.default_rng(0)
    for k in range(8):
        ax.plot(np.cumsum(rng.normal(size=400)), label=f"init {k}")
    claim.figure(fig, "walks")
    png = claim.dir / "walks.png"
    thumb = claim.dir / "walks.thumb.webp"
    with Image.open(png) as image:
        assert image.mode == "P" and len(image.getcolors(PALETTE + 1) or ()) <= PALETTE
        full_width = image.width
    with Image.open(thumb) as image:
        assert image.format == "WEBP" and image.width == min(THUMB_WIDTH, full_width)
    assert claim.artifacts[0]["thumb"].endswith("walks.thumb.webp")
    assert thumb.stat().st_size < png.stat().st_size


def test_table_floats_keep_ten_significant_digits(tmp_path):
    df = pd.DataFrame({"x": [np.pi * 1e-15, 1 / 3, 12345.678901234]})
    back = pd.read_csv(Claim("claims/test_t.py::test_t[a]", tmp_path).table(df, "x"))
    np.testing.assert_allclose(back["x"], df["x"], rtol=5e-10)
