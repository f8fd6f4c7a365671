"""Report rendering, findings, history, folder safety (fast: no training, no subprocess)."""

import json
import os
import re
import stat
from html.parser import HTMLParser

import pytest
from synthetic_report import FAMILY_INFO, HOSTILE, build

from dlncheck.report import findings, history, html, store
from dlncheck.report.claim import Claim, folder_name
from dlncheck.report.fmt import clean_text, number
from dlncheck.store import atomic


def links(html: str) -> list[str]:
    found = []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(v for k, v in attrs if k in ("href", "src") and v)

    P().feed(html)
    return [u.split("#")[0] for u in found if not u.startswith(("#", "http", "mailto"))]


def test_folder_names_are_readable_and_collision_proof():
    names = {folder_name(f"claims/test_x.py::test_x[{i}]") for i in ("a<b", "a>b", "a b")}
    assert len(names) == 3 and all(n.startswith("test_x.test_x.a_b-") for n in names)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", folder_name("c/test_y.py::t[\ud800\u202e]"))


def test_text_cleaning_and_number_formatting():
    assert clean_text("a\ud800b\u202ec\x07d\n") == "a\ufffdb\\u202ec\\u0007d\n"
    assert "nan" not in number(float("nan")) and 'title="not a number' in number("nan")
    assert number(1.23456e-5) == "1.235e-5" and number(0.000123456) == "0.0001235"
    assert number(12) == "12" and number(True) == "yes"
    assert str(number(list(range(20)))).endswith("… (20 values)]")
    assert number({"identity": True}) == "identity = yes"


def test_golden_path_reading_per_family_and_override():
    """The reading comes from the family as the record carries it (its tests' family mark), never from
    a table in dlncheck.report; the report orders families by group, then by name."""

    def rec(family, holds, **kw):
        info = FAMILY_INFO.get(family, {})
        return {
            "family": family,
            "family_info": info,
            "holds": holds,
            "outcome": "passed" if holds else "xfailed",
            **kw,
        }

    assert findings.golden_path(rec("function_space", True)) == "agrees"
    assert findings.golden_path(rec("singular_patterns", False)) == "differs"
    assert findings.golden_path(rec("parameter_space", False)) == "agrees"  # stays in GD's gauge
    assert findings.golden_path(rec("balance", False)) == "assumption-fails"
    assert findings.golden_path(rec("rank_recovery", False)) == "n/a"
    assert findings.golden_path(rec("brand_new", True)) == "n/a"
    assert findings.golden_path(rec("balance", True, golden_path="differs")) == "differs"
    assert findings.golden_path({**rec("function_space", None), "outcome": "error"}) == "n/a"
    order = findings.families([rec(f, True) for f in ("zeta", "rank_recovery", "balance", "gd_trap", "function_space")])
    assert list(order) == ["function_space", "gd_trap", "balance", "rank_recovery", "zeta"]


def test_reproductions_line_per_published_result():
    results = [
        [r"\[rank-deficiency-", "label-noise SGD shrinks det(Theta^T Theta), GD keeps it"],
        [r"\[stationary-collapse-", "no label noise: SGD collapses onto GD's fixed point"],
        [r"\[diffusion-peak-", "diffusion peaks before learning"],
        [r"\[balance-noise-", "law of balance"],
    ]

    def rec(case, holds, golden=None, test="test_rank_deficiency"):
        return {
            "family": "published",
            "family_info": {"group": "assumptions", "if_contradicted": "assumption-fails", "results": results},
            "nodeid": f"claims/test_published.py::{test}[{case}]",
            "case": case,
            "holds": holds,
            "outcome": "passed" if holds else "xfailed",
            "golden_path": golden,
        }

    lines = findings.reproductions(
        [
            rec("rank-deficiency-varre-2x5-L2", False, "differs"),
            rec("rank-deficiency-varre-2x5-L3", True, "differs"),
            rec("stationary-collapse-saddle-fullrank-L2", True, "agrees", "test_stationary"),
            rec("diffusion-peak-saddle-lowrank-L2", None, None, "test_diffusion_peak"),
        ]
    )
    text = {line["result"].split(" (")[0]: line["text"] for line in lines}
    assert len(lines) == 3  # balance and boltzmann: no case, no line
    assert (
        "partly reproduces (1 of 2 cases; golden path: SGD differs from GD (2))"
        in text["label-noise SGD shrinks det(Theta^T Theta), GD keeps it"]
    )
    assert (
        "reproduces (1 of 1 cases; golden path: SGD follows GD (1))"
        in text["no label noise: SGD collapses onto GD's fixed point"]
    )
    assert text["diffusion peaks before learning"].endswith("not run (0 of 0 cases)")


def test_index_prints_the_reproduces_lines(tmp_path):
    import os

    from synthetic_report import record

    from dlncheck.report.html import write_report

    records = [record(tmp_path, "published", "rank-deficiency-varre-2x5-L2", "xfailed", False, False, "slope")]
    write_report(records, tmp_path, {"tier": "quick", "pid": os.getpid()})
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    results = html[html.index('id="results"') : html.index('id="contradictions"')]
    assert "does not reproduce (0 of 1 cases" in results and "Varre" in results
    assert 'href="#case-' in results


def test_verdict_keywords(tmp_path):
    claim = Claim("claims/test_a.py::test_a[x]", tmp_path)
    with pytest.raises(ValueError, match="golden_path='maybe'"):
        claim.verdict(prediction="p", holds=True, golden_path="maybe")
    claim.verdict(prediction="p", holds=True, n=True, count=100, bad=float("nan"), d=0.25, e=3.0)
    assert (claim.verdict_record["key"], claim.verdict_record["key_value"]) == ("d", 0.25)
    claim.verdict(prediction="p", holds=True, count=100, text="x")
    assert (claim.verdict_record["key"], claim.verdict_record["key_value"]) == ("count", 100.0)
    claim.verdict(prediction="p", holds=True, reason="r", golden_path="agrees", key="e", d=0.25, e=3.0)
    rec = claim.verdict_record
    assert (rec["key"], rec["key_value"], rec["reason"], rec["golden_path"]) == ("e", 3.0, "r", "agrees")
    assert "reason" not in rec["numbers"]


def test_index_findings_first_case_pages_and_every_link_resolves(tmp_path):
    records = build(tmp_path)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert html.index('id="answer"') < html.index('id="findings"') < html.index('<table class="grid"')
    assert 'name="viewport"' in html and "http" not in html.replace("http-equiv", "")
    assert "xfailed = a measured contradiction" in html
    contradictions = html[html.index('id="contradictions"') : html.index('id="changes"')]
    # grouped by root cause (2 of 3 share one), each stated from this run's numbers (x = 0.5), not the recorded 0.25
    assert contradictions.count("<h3>") == 2 and contradictions.count("<li>") == 3
    assert contradictions.index("late-escape") < contradictions.index("gauge") and "SGD stays in GD" in contradictions
    assert contradictions.count("x = 0.500 where 0.5 was predicted") == 3 and "0.250" not in contradictions
    for rec in records:
        assert f'id="case-{rec["folder"]}"' in html
        page = tmp_path / "claims" / rec["folder"] / "index.html"
        text = page.read_text(encoding="utf-8")
        assert "results.json" in text and "level.csv" in text
        assert not re.search(r"\bnan\b", re.sub(r"<[^>]*>", "", text)), "nan shown as text"
        for link in links(text):
            assert (page.parent / link).resolve().exists(), (page, link)
    for link in links(html):
        assert (tmp_path / link).exists(), link
    assert 'loading="lazy"' in html and ".thumb.webp" in html


def test_hostile_text_cannot_crash_inject_or_spoof(tmp_path):
    build(tmp_path)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "<img src=x" not in html and "&lt;img src=x" in html
    assert "\u202e" not in html and "\\u202e" in html
    results = json.loads(
        (tmp_path / "results.json").read_text(encoding="utf-8"),
        parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"),
    )
    assert any("evil" in c["case"] for c in results["claims"])
    assert HOSTILE not in json.dumps(results, ensure_ascii=False)


def test_history_changes_flips_contradictions_xpass_and_drift(tmp_path):
    base = {"family": "f", "case": "c", "holds": True, "golden_path": None, "key": "x"}
    old = [
        {**base, "nodeid": n, "outcome": o, "key_value": v}
        for n, o, v in (("a", "passed", 1.0), ("b", "passed", 1.0), ("c", "xfailed", 1.0), ("d", "passed", 1.0))
    ]
    history.append(tmp_path, {"started": "run1"}, old)
    with open(tmp_path / history.FILE, "a") as f:
        f.write('{"truncated by a ki')  # a run killed while appending
    new = [
        {**base, "nodeid": "a", "outcome": "passed", "key_value": 1.04},  # inside the band
        {**base, "nodeid": "b", "outcome": "xfailed", "holds": False, "key_value": 1.0},
        {**base, "nodeid": "c", "outcome": "xpassed", "key_value": 1.0},
        {**base, "nodeid": "d", "outcome": "passed", "key_value": 1.2},  # drift
        {**base, "nodeid": "e", "outcome": "passed", "key_value": 1.0},
    ]
    rows = history.load(tmp_path)
    assert len(rows) == 4
    ch = history.changes(new, history.latest(rows, "run2"))
    names = {
        k: [c["record"]["nodeid"] for c in ch[k]]
        for k in ("flips", "new_contradictions", "vanished_contradictions", "xpass", "drift", "new_cases")
    }
    assert names == {
        "flips": ["b", "c"],
        "new_contradictions": ["b"],
        "vanished_contradictions": ["c"],
        "xpass": ["c"],
        "drift": ["d"],
        "new_cases": ["e"],
    }
    assert ch["compared"] == 4 and not ch["first_run"]


def test_changes_section_renders(tmp_path):
    build(tmp_path)
    from dlncheck.report.html import write_report

    records = json.loads((tmp_path / "results.json").read_text())["claims"]
    write_report(records, tmp_path, {"tier": "quick"}, changes=history.changes(records, {}))
    first = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "First run" in first and "No history" not in first
    history.append(tmp_path, {"started": "r1"}, records)
    flipped = [{**r, "outcome": "xpassed"} if r["family"] == "parameter_space" else r for r in records]
    ch = history.changes(flipped, history.latest(history.load(tmp_path), "r2"))
    write_report(flipped, tmp_path, {"tier": "quick"}, changes=ch)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    section = html[html.index('id="changes"') : html.index('id="cases"')]
    assert "verdict flip" in section and "XPASS" in section and f"{len(records)} cases compared" in section


def test_swap_in_and_stale_leftovers_of_a_killed_run(tmp_path):
    claims = tmp_path / "claims"
    (claims / "case").mkdir(parents=True)
    (claims / "case" / "old.png").write_text("old")
    (claims / ".building-1-case").mkdir()
    (claims / ".building-1-case" / "new.png").write_text("new")
    assert store.swap_in(claims, ".building-1-case", "case")
    assert [p.name for p in (claims / "case").iterdir()] == ["new.png"]
    dead = 2**22 + 12345  # above pid_max's default: no such process
    (claims / f".old-{dead}-gone").mkdir()  # killed between the two renames
    (claims / f".building-{dead}-x").mkdir()  # killed mid-test
    (claims / f".building-{os.getpid()}-mine").mkdir()  # a live run's folder stays
    touched = store.clean_stale(tmp_path)
    assert sorted(p.name for p in claims.iterdir()) == [f".building-{os.getpid()}-mine", "case", "gone"]
    assert len(touched) == 2


def test_lock_detects_a_live_writer_and_takes_over_a_dead_one(tmp_path):
    first, second = store.Lock(tmp_path, {"started": "a"}), store.Lock(tmp_path, {"started": "b"})
    assert first.acquire() is None
    assert second.acquire()["started"] == "a"
    first.release()
    assert second.acquire() is None
    second.release()
    atomic.write_json(tmp_path / store.LOCK, {"pid": 2**22 + 12345, "host": first.info["host"]})
    assert first.acquire() is None


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_written_files_honour_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        path = atomic.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("cmap, dark_low", [("viridis", True), ("Greys", False)])
def test_heatmap_text_contrasts_with_its_cell(cmap, dark_low):
    """Annotations are white on dark cells and black on light ones, whatever the colormap
    (light-grey cells of a Greys map carried white text before)."""
    import numpy as np

    from dlncheck.report import plots

    fig, ax = plots.figure()
    plots.heatmap(ax, np.array([[0.0, 1.0], [0.0, 1.0]]), cmap=cmap, fmt="{:.2f}")
    colours = {t.get_text(): t.get_color() for t in ax.texts}
    assert colours == ({"0.00": "white", "1.00": "black"} if dark_low else {"0.00": "black", "1.00": "white"})


def test_log_minor_ticks_dropped_only_where_matplotlib_leaves_them_unlabelled():
    """Log axes spanning more than a decade lose their (unlabelled) minor ticks; a log axis of at
    most one decade keeps them (they carry its labels) and linear axes are left alone."""
    from matplotlib.ticker import NullLocator

    from dlncheck.report import figure_files, plots

    fig, (wide, narrow, linear) = plots.figure(1, 3)
    wide.loglog([1e-3, 1e2], [1, 1e4])
    narrow.set(xscale="log", xlim=(2, 9), yscale="log", ylim=(1, 10))
    linear.plot([0, 1e5], [0, 1])
    linear_minor = type(linear.xaxis.get_minor_locator())
    figure_files.unlabelled_log_minor_ticks_off(fig)
    assert isinstance(wide.xaxis.get_minor_locator(), NullLocator)
    assert isinstance(wide.yaxis.get_minor_locator(), NullLocator)
    assert not isinstance(narrow.xaxis.get_minor_locator(), NullLocator)
    assert not isinstance(narrow.yaxis.get_minor_locator(), NullLocator)
    assert type(linear.xaxis.get_minor_locator()) is linear_minor
    assert len(narrow.xaxis.get_minorticklocs()) > 0


def test_margins_in_inches_and_one_shared_colour_bar():
    """``figure(margins=...)`` sets that side in inches (others keep MARGIN_INCHES); panels on one
    scale share one colour bar: 4 heatmaps + 1 bar = 5 axes, not 8."""
    import numpy as np

    from dlncheck.report import plots

    fig, axes = plots.figure(1, 4, size=(10.0, 3.0), margins={"right": 2.5})
    grid = axes[0].get_gridspec()
    assert np.isclose(grid.right, 1 - 2.5 / 10.0) and np.isclose(grid.left, plots.MARGIN_INCHES[0] / 10.0)
    for ax in axes:
        im = plots.heatmap(ax, np.triu(np.ones((3, 3))), vmin=0, vmax=1, cbar_label=None)
    bar = plots.shared_colorbar(im, axes, "value")
    assert len(fig.axes) == 5 and bar.ax.get_ylabel() == "value"


def test_shade_windows_skips_windows_theory_does_not_place():
    """A window with a non-finite end (no predicted escape) is not drawn (matplotlib warned on NaN)."""
    import warnings

    from dlncheck.report import plots

    fig, ax = plots.figure()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.shade_windows(ax, [(1.0, 2.0), (float("nan"), float("nan")), (3.0, float("inf"))])
    assert len(ax.patches) == 1


def test_claim_line_counts_only_the_cases_that_test_its_result():
    """A family (as gd_trap) whose L = 3 case reports SGD's escape without asserting it: the escape line
    counts the L = 2 case only; the trap line counts both."""
    results = [
        [r"\[trapped-", "GD stays on the plateau"],
        [r"\[trapped-.*-L2-seed", "every SGD run escapes it"],
    ]

    def rec(case, holds, golden):
        return {
            "family": "gd_trap",
            "family_info": {
                "group": "golden path",
                "if_holds": "differs",
                "if_contradicted": "agrees",
                "results": results,
            },
            "nodeid": f"claims/test_gd_trap.py::test_gd_trap[{case}]",
            "case": case,
            "holds": holds,
            "outcome": "passed",
            "golden_path": golden,
        }

    # L = 3: GD trapped (the prediction holds), no SGD run escaped (reading: agrees)
    lines = findings.reproductions(
        [
            rec("trapped-saddle-fullrank-L2-seed0", True, "differs"),
            rec("trapped-saddle-fullrank-L3-seed1", True, "agrees"),
        ]
    )
    by_result = {line["result"]: line for line in lines}
    escape = by_result["every SGD run escapes it"]
    assert [r["case"] for r in escape["records"]] == ["trapped-saddle-fullrank-L2-seed0"]
    assert "reproduces (1 of 1 cases; golden path: SGD differs from GD (1))" in escape["text"]
    assert "(2 of 2 cases" in by_result["GD stays on the plateau"]["text"]


def _plain(family, case, outcome, holds, golden=None, cause=None, numbers=None):
    return {
        "family": family,
        "family_info": FAMILY_INFO.get(family, {}),
        "nodeid": f"claims/test_{family}.py::test_{family}[{case}]",
        "case": case,
        "params": {},
        "holds": holds,
        "outcome": outcome,
        "golden_path": golden,
        "numbers": numbers or {},
        "message": "",
        "contradiction": {"cause": cause, "cause_text": f"text of {cause}", "statement": f"{case} now"}
        if cause
        else None,
    }


def test_answer_headline_causes_scaling_and_bars():
    from dlncheck.report import answer

    slope = {"slope": 1.2, "slope_lo": 1.1, "slope_hi": 1.3, "slope_predicted": 0.5}
    records = [
        _plain("function_space", "saddle-lowrank-L2", "passed", True),
        _plain("singular_patterns", "saddle-lowrank-L3", "xfailed", False, cause="late-escape"),
        _plain("singular_patterns", "ntk-fullrank-L3", "xfailed", False, cause="late-escape"),
        _plain("parameter_space", "saddle-lowrank-L3", "passed", True),  # theory predicts: differs
        _plain("balance", "saddle-lowrank-L2", "xfailed", False, cause="drift"),  # assumption fails
        _plain("rank_recovery", "exact", "passed", True),
        _plain("scaling", "d_sigma-saddle-lowrank-L3", "xfailed", False, "agrees", "reshuffle", slope),
        _plain("scaling", "d_sigma-ntk-lowrank-L2", "passed", True, "agrees", numbers=slope),
    ]
    assert answer.headline(records) == (
        "SGD follows GD's path in 3 of 6 comparisons, differs in 3 (theory's assumption fails in 1; "
        "1 case is not about the golden path); 8 cases in all."
    )
    groups = answer.differs_groups(records)
    assert [(g["cause"], g["predicted"], len(g["records"])) for g in groups] == [
        ("late-escape", False, 2),
        ("", True, 1),
    ]
    # the scaling fit measured at saddle-lowrank-L3 belongs to the group with a case there, not the other
    assert [r["case"] for r in groups[0]["slopes"]] == ["d_sigma-saddle-lowrank-L3"]
    assert [r["case"] for r in groups[1]["slopes"]] == ["d_sigma-saddle-lowrank-L3"]  # parameter_space there too
    bars = answer.family_bars(records)
    assert sum(n for b in bars for _, n, _ in b["parts"]) == len(records)
    assert all(abs(sum(p for _, _, p in b["parts"]) - 100) < 1e-9 for b in bars)
    by_cause = {g["cause"]: [s for _, s in g["entries"]] for g in answer.contradiction_groups(records)}
    assert by_cause == {
        "late-escape": ["saddle-lowrank-L3 now", "ntk-fullrank-L3 now"],
        "drift": ["saddle-lowrank-L2 now"],
        "reshuffle": ["d_sigma-saddle-lowrank-L3 now"],
    }
    assert answer.mdd({"mdd": 0.1, "mdd_slope": 0.2, "x_mdd": 1, "slope": 2}) == {"mdd": 0.1, "mdd_slope": 0.2}


def test_messages_shown_as_one_line_without_rewrite_dumps():
    from dlncheck.report.fmt import brief

    dump = (
        "data contradict the prediction: slope 1.16\n"
        "AssertionError: fitted slope 1.156 [1.087, 1.224] excludes the predicted 0.5\n"
        "assert False\n +  where False = verdict(prediction='slope 0.5', holds=False, slope=1.1555)\n"
        " +    where verdict = Claim(nodeid='claims/test_scaling.py::test_scaling_slope[x]').verdict"
    )
    assert brief(dump) == "AssertionError: fitted slope 1.156 [1.087, 1.224] excludes the predicted 0.5"
    table = "AssertionError: rejected\n   pair  ...  x\n0     1  ...  [0.4, 0.3]\n\n[1 rows x 23 columns]"
    assert brief(table) == "AssertionError: rejected"
    bare = "AssertionError: assert 2 == 1\n +  where 2 = len(SlopeFit(x=array([1, 2])))"
    assert brief(bare).startswith("AssertionError: a bare assert failed")
    assert brief("x" * 500).endswith("…") and len(brief("x" * 500)) == 240
    assert brief("") == ""


def test_report_pages_hold_no_rewrite_dump_and_show_mdd(tmp_path):
    from synthetic_report import record

    from dlncheck.report.html import write_report

    rec = record(tmp_path, "function_space", "saddle-lowrank-L2", "failed", False, False, "")
    rec["message"] = "AssertionError: gap 0.3 > 0.1\nassert False\n +  where False = Claim(x=array([1.0]))"
    rec["numbers"] = {**rec["numbers"], "mdd_gap": 0.05}
    write_report([rec], tmp_path, {"tier": "quick", "pid": os.getpid()})
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "+  where" not in index and "array(" not in index and "gap 0.3 &gt; 0.1" in index
    assert "<code>mdd_gap</code> = 0.05" in index
    page = (tmp_path / "claims" / rec["folder"] / "index.html").read_text(encoding="utf-8")
    shown, _, hidden = page.partition("<details><summary>details: the full pytest message</summary>")
    assert "+  where" not in shown and "+  where" in hidden.split("</details>")[0]
    assert "mdd_gap</dt><dd>0.05" in page


def _luminance(hex_colour: str) -> float:
    rgb = [int(hex_colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_every_glyph_and_outcome_word_has_aa_contrast():
    """WCAG 2 contrast >= 4.5:1 for the reading glyphs on their cell colour, the outcome marks (white
    on their badge) and the outcome words (on the white page), as report.css declares them."""
    from importlib.resources import files

    css = (files("dlncheck.report") / "templates" / "report.css").read_text(encoding="utf-8")
    cells = dict(
        (name, (bg, fg))
        for name, bg, fg in re.findall(
            r"\.(agrees|differs|assumption-fails|na) \{ background: (#\w{6}); color: (#\w{6}); \}", css
        )
    )
    marks = re.findall(r"((?:\.om-[\w-]+(?:, )?)+) \{ background: (#\w{6}); \}", css)
    words = re.findall(r"((?:\.o-[\w-]+(?:, )?)+) \{ color: (#\w{6}); \}", css)
    assert set(cells) == {"agrees", "differs", "assumption-fails", "na"} and len(marks) == 3 and len(words) == 4
    ratios = {name: _contrast(bg, fg) for name, (bg, fg) in cells.items()}
    ratios |= {names: _contrast(bg, "#ffffff") for names, bg in marks}
    ratios |= {names: _contrast(fg, "#ffffff") for names, fg in words}
    assert min(ratios.values()) >= 4.5, ratios


def test_grid_shows_both_clocks_of_a_comparison_side_by_side(tmp_path):
    def rec(case, clock, holds, test="test_rank"):
        return {
            "nodeid": f"claims/test_rank.py::{test}[{case}]",
            "family": "rank",
            "family_info": {"group": "golden path", "if_holds": findings.A, "if_contradicted": findings.D},
            "case": case,
            "params": {"regime": "saddle", "teacher": "lowrank", "depth": 3, **({"reading": clock} if clock else {})},
            "holds": holds,
            "outcome": "passed" if holds else "xfailed",
        }

    recs = [
        rec("saddle-lowrank-L3-progress", "progress", True),
        rec("saddle-lowrank-L3-other", "", True, test="test_other"),
        rec("saddle-lowrank-L3-time", "time", False),
    ]
    cell = findings.grid(recs)["rows"][0][2][("saddle", "lowrank", "3")]
    # one comparison, equal time first, beside the single-reading test's record
    assert [[r["case"] for r in c] for c in cell] == [
        ["saddle-lowrank-L3-time", "saddle-lowrank-L3-progress"],
        ["saddle-lowrank-L3-other"],
    ]
    page = html.render_index(recs, tmp_path, {"tier": "quick"}, None)
    grid = page[page.index('<table class="grid"') : page.index("</table>", page.index('<table class="grid"'))]
    pair = re.search(r'<span class="pair">(.*?)</span></td>', grid)
    assert pair and re.findall(r'<sub class="clock"[^>]*>(\w)</sub>', pair[1]) == ["t", "p"]
    assert "(equal time): SGD differs" in pair[1] and "(matched progress): SGD follows" in pair[1]
    assert grid.count('class="pair"') == 1 and '<option value="progress">matched progress</option>' in page
