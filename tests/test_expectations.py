"""The claim families of claims/ as declared objects, their contradictions as data.

Each ``claims/test_<family>.py`` declares its family (``FAMILY = Family(...)``, marked on its tests),
each family has ``claims/contradictions/<family>.toml``, and every entry there names a case that its
tiers collect; no claim module imports another, and dlncheck/report names no family.
"""

import ast
import math
import string
import subprocess
import sys
from pathlib import Path

import pytest

from dlncheck.suite import contradictions
from dlncheck.suite.tiers import TIERS

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = ROOT / "claims"


def declared_families() -> dict[str, str]:
    """{family name: test module} from each module's ``FAMILY = Family("<name>", ...)``."""
    out = {}
    for path in sorted(CLAIMS.glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["FAMILY"]:
                out[node.value.args[0].value] = path.stem
    return out


def collected(tier: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "claims", "--collect-only", "-q", "-p", "no:cacheprovider", "--tier", tier],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.strip() for line in out.splitlines() if "::" in line}


def test_every_test_module_declares_one_family_with_a_contradictions_file():
    families = declared_families()
    assert sorted(families.values()) == sorted(p.stem for p in CLAIMS.glob("test_*.py"))
    files = {p.stem for p in (CLAIMS / contradictions.FOLDER).glob("*.toml")}
    assert files == set(families), (
        f"contradictions files without a family or families without one: {files ^ set(families)}"
    )


def test_every_contradiction_names_a_case_of_its_tiers():
    """An entry's ``numbers.<tier>`` tiers are where it applies: the case must be collected there (for
    the nightly sizes, with every case: ``--tier weekly``, which also runs those over nightly's time budget)."""
    ids = {tier: collected("weekly" if tier == "nightly" else tier) for tier in TIERS}
    for family, module in declared_families().items():
        table = contradictions.load(CLAIMS / contradictions.FOLDER / f"{family}.toml")
        for entry in table["cases"]:
            nodeid = f"claims/{module}.py::{entry['test']}[{entry['id']}]"
            for tier in entry["numbers"]:
                assert nodeid in ids[tier], f"{family}: {nodeid} is not a case of the {tier} tier"


def test_reasons_render_measured_numbers_and_bands_track_numbers():
    """A reason renders at least one recorded field; every tracked number is a finite number."""
    for family in declared_families():
        table = contradictions.load(CLAIMS / contradictions.FOLDER / f"{family}.toml")
        used = {entry["cause"] for entry in table["cases"]}
        assert used == set(table["causes"]), f"{family}: causes listed but unused: {set(table['causes']) - used}"
        for entry in table["cases"]:
            assert any(name for _, name, _, _ in string.Formatter().parse(entry["reason"])), entry["id"]
            for tier, numbers in entry["numbers"].items():
                for name in entry["bands"]:
                    value = numbers[name]
                    assert isinstance(value, (int, float)) and math.isfinite(value), (family, entry["id"], tier, name)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


@pytest.mark.parametrize("path", sorted(CLAIMS.glob("*.py")), ids=lambda p: p.name)
def test_no_claim_module_imports_a_test_module(path):
    """A family's helpers are plain modules; a test module is collected once, from its own file."""
    assert not [n for n in _imports(path) if n.startswith("claims.test_")]


def test_the_report_names_no_family():
    """dlncheck/report reads families from the records: no family name as a string in its code or templates."""
    families = set(declared_families())
    report = ROOT / "dlncheck" / "report"
    for path in report.glob("*.py"):
        strings = {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)}
        assert not strings & families, f"{path.name} names families {strings & families}"
    for path in (report / "templates").glob("*.html"):
        text = path.read_text()
        assert not [f for f in families if f"'{f}'" in text or f'"{f}"' in text], path.name
