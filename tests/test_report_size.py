"""A report that travels: tables as csv.xz that pandas reads back, full-size figures as lossless
256-colour WebP with WebP thumbnails, one stylesheet and script for every page."""

import lzma

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image
from synthetic_report import build
from test_bench_figures import _figures

from dlncheck.report import plots
from dlncheck.report.claim import INDEX_THUMBS, THUMB_WIDTH, Claim
from dlncheck.report.figure_files import PALETTE, save_figure
from dlncheck.report.html import ASSETS


def test_tables_are_xz_csv_that_pandas_reads_back_byte_for_byte_reproducible(tmp_path):
    df = pd.DataFrame({"t": np.arange(50, dtype=float), "x": np.linspace(0, 1, 50), "init": ["gaussian#2"] * 50})
    first = Claim("claims/test_t.py::test_t[a]", tmp_path).table(df, "per init")
    again = Claim("claims/test_t.py::test_t[b]", tmp_path).table(df, "per init")
    assert first.name == "per_init.csv.xz" and lzma.decompress(first.read_bytes()).startswith(b"t,x,init\n")
    # %.10g writes 1.0 as "1": a column of whole numbers reads back as integers
    pd.testing.assert_frame_equal(pd.read_csv(first), df, check_exact=False, rtol=5e-10, check_dtype=False)
    assert first.read_bytes() == again.read_bytes()


def test_figures_are_lossless_palette_webp_with_webp_thumbnails(tmp_path):
    claim = Claim("claims/test_t.py::test_t[a]", tmp_path)
    fig, ax = plots.figure()
    rng = np.random.default_rng(0)
    for k in range(8):
        ax.plot(np.cumsum(rng.normal(size=400)), label=f"init {k}")
    claim.figure(fig, "walks")
    full = claim.dir / "walks.webp"
    thumb = claim.dir / "walks.thumb.webp"
    with Image.open(full) as image:
        assert image.format == "WEBP"
        assert len(image.convert("RGB").getcolors(PALETTE + 1) or ()) <= PALETTE  # None: more colours
        full_width = image.width
    with Image.open(thumb) as image:
        assert image.format == "WEBP" and image.width == min(THUMB_WIDTH, full_width)
    assert claim.artifacts[0]["path"].endswith("walks.webp") and claim.artifacts[0]["thumb"].endswith(
        "walks.thumb.webp"
    )
    assert thumb.stat().st_size < full.stat().st_size


def test_webp_full_size_keeps_the_palette_pixels(tmp_path):
    """Lossless: the WebP decodes to exactly the pixels of the palette PNG of the same figure."""
    for suffix in (".png", ".webp"):
        fig, ax = plots.figure()
        ax.plot(np.sin(np.linspace(0, 9, 300)), label="GD")
        ax.legend()
        save_figure(fig, tmp_path / f"f{suffix}")
        plt.close(fig)
    with Image.open(tmp_path / "f.png") as png, Image.open(tmp_path / "f.webp") as webp:
        assert png.format == "PNG" and webp.format == "WEBP"
        np.testing.assert_array_equal(np.asarray(png.convert("RGB")), np.asarray(webp.convert("RGB")))
    assert (tmp_path / "f.webp").stat().st_size < (tmp_path / "f.png").stat().st_size


def test_table_floats_keep_ten_significant_digits(tmp_path):
    df = pd.DataFrame({"x": [np.pi * 1e-15, 1 / 3, 12345.678901234]})
    back = pd.read_csv(Claim("claims/test_t.py::test_t[a]", tmp_path).table(df, "x"))
    np.testing.assert_allclose(back["x"], df["x"], rtol=5e-10)


def test_thumbnails_only_for_the_figures_the_index_shows(tmp_path):
    claim = Claim("claims/test_t.py::test_t[a]", tmp_path)
    for k in range(INDEX_THUMBS + 1):
        fig, ax = plots.figure()
        ax.plot([0, 1], [k, k + 1])
        claim.figure(fig, f"f{k}")
    assert sorted(p.name for p in claim.dir.glob("*.thumb.webp")) == [f"f{k}.thumb.webp" for k in range(INDEX_THUMBS)]
    assert [a["thumb"] is not None for a in claim.artifacts] == [True] * INDEX_THUMBS + [False]


# The size budget (issue #27): a fresh quick tier's report folder at most 25 MB, as `du` counts it
# (whole 4 KiB blocks per file). Measured on a fresh quick tier (331 cases, commit 51eced7): the
# shared files (index.html, results.json, history.jsonl, report.css, report.js) take SHARED bytes;
# per case there are on average FIGURES_PER_CASE figures and TABLE_BYTES_PER_CASE of csv.xz tables
# (the figures' data, written as they are). What is left is each case's share for its page and figures.
BLOCK = 4096
QUICK_BUDGET, QUICK_CASES = 25_000_000, 331
SHARED, FIGURES_PER_CASE, TABLE_BYTES_PER_CASE = 2_520_000, 463 / 331, 7_000_000 / 331
PER_CASE = (QUICK_BUDGET - SHARED) / QUICK_CASES  # ~67.9 kB
PAGE_SHARE = 2 * BLOCK  # a case page: at most two blocks
FIGURE_SHARE = (PER_CASE - PAGE_SHARE - TABLE_BYTES_PER_CASE) / FIGURES_PER_CASE  # ~27 kB, full size + thumbnail


def _allocated(path) -> int:
    return -(-path.stat().st_size // BLOCK) * BLOCK


def test_case_pages_link_one_shared_stylesheet_and_fit_their_share(tmp_path):
    records = build(tmp_path)
    for name in ASSETS:
        assert (tmp_path / name).stat().st_size > 0
    for rec in records:
        page = tmp_path / "claims" / rec["folder"] / "index.html"
        text = page.read_text(encoding="utf-8")
        assert "<style" not in text and '<script src="../../report.js">' in text
        assert '<link rel="stylesheet" href="../../report.css">' in text
        assert _allocated(page) <= PAGE_SHARE, (rec["case"], page.stat().st_size)
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "<style" not in index and '<link rel="stylesheet" href="report.css">' in index


def test_a_curves_figure_fits_its_share_of_the_budget(tmp_path):
    """Log-time curves with bands and a legend (the kind most claims draw: losses and singular values
    against time), written as the claims write figures: full size and thumbnail within FIGURE_SHARE."""
    claim = Claim("claims/test_t.py::test_t[a]", tmp_path)
    claim.figure(next(iter(_figures())), "curves")
    files = sorted(claim.dir.iterdir())
    assert [p.name for p in files] == ["curves.thumb.webp", "curves.webp"]
    assert sum(_allocated(p) for p in files) <= FIGURE_SHARE, [(p.name, p.stat().st_size) for p in files]
