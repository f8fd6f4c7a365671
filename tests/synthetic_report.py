"""A small report built by hand (no training): records of several families and outcomes, real
figures written through ``Claim``, and a hostile case id. Shared by the report tests."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from dlncheck.report import plots, store
from dlncheck.report.claim import Claim
from dlncheck.report.contradiction import judge
from dlncheck.report.html import write_report

#: the families' declarations as their tests' ``family`` marks carry them into records (dlncheck.suite.family)
FAMILY_INFO = {
    "function_space": {
        "group": "golden path",
        "if_holds": "agrees",
        "if_contradicted": "differs",
        "question": "same map?",
    },
    "singular_patterns": {"group": "golden path", "if_holds": "agrees", "if_contradicted": "differs"},
    "parameter_space": {"group": "golden path", "if_holds": "differs", "if_contradicted": "agrees"},
    "gd_trap": {"group": "golden path", "if_holds": "differs", "if_contradicted": "agrees"},
    "balance": {"group": "assumptions", "if_contradicted": "assumption-fails"},
    "rank_recovery": {"group": "calibration"},
    "published": {
        "group": "assumptions",
        "if_contradicted": "assumption-fails",
        "results": [[r"\[rank-deficiency-", "label-noise SGD shrinks det(Theta^T Theta), GD keeps it (Varre et al.)"]],
    },
}
#: root causes of the xfailed cases (by their reason), as a contradictions file would name them
CAUSES = {"SGD's s_2 escapes later": "late-escape", "SGD stays in GD's gauge": "gauge"}
HOSTILE = '<img src=x onerror="document.title=1">\u202eevil\ud800'
CASES = [  # (family, case, outcome, holds, exploratory, reason)
    ("function_space", "saddle-lowrank-L2", "passed", True, False, ""),
    ("singular_patterns", "saddle-lowrank-L3", "xfailed", False, False, "SGD's s_2 escapes later"),
    ("singular_patterns", "ntk-fullrank-L3", "xfailed", False, False, "SGD's s_2 escapes later"),
    ("parameter_space", "saddle-lowrank-L3", "xfailed", False, False, "SGD stays in GD's gauge"),
    ("balance", "intermediate-degenerate-L2", "passed", True, True, ""),
    ("rank_recovery", "exact-lowrank-float64", "failed", False, False, ""),
    ("gd_trap", "saddle-lowrank-L2", "passed", True, False, ""),
    ("balance", HOSTILE, "passed", True, False, ""),
]


def record(
    root: Path, family: str, case: str, outcome: str, holds: bool, exploratory: bool, reason: str, value: float = 0.5
) -> dict:
    nodeid = f"claims/test_{family}.py::test_{family}[{case}]"
    claim = Claim(nodeid, root)
    fig, ax = plots.figure()
    ax.plot([0, 1], [value, value], label="SGD")
    claim.figure(fig, "level", caption=f"level of {case}")
    claim.table(pd.DataFrame({"t": [0, 1], "x": [value, value]}), "level")
    claim.verdict(
        prediction="x stays at 0.5",
        observed=f"x = {value}, plateau [nan, nan]",
        holds=holds,
        exploratory=exploratory,
        reason="theory says so",
        x=value,
        missing=float("nan"),
    )
    store.swap_in(root / "claims", claim.dir.name, claim.folder)
    message = {
        "xfailed": f"data contradict the prediction: {reason}\nAssertionError: x",
        "failed": "AssertionError: x = 2, expected 1",
    }.get(outcome, "")
    entry = {
        "family": family,
        "tier": "quick",
        "test": f"test_{family}",
        "id": case,
        "cause": CAUSES.get(reason, "other"),
        "cause_text": reason,
        "kind": "artifact" if CAUSES.get(reason) == "gauge" else "genuine",
        "reason": "x = {x:.3f} where 0.5 was predicted",
        "bands": {"x": 0.1},
        "numbers": {"x": 0.25},
        "note": "",
    }
    return {
        "nodeid": nodeid,
        "family": family,
        "family_info": FAMILY_INFO.get(family, {}),
        "case": case,
        "params": {},
        "folder": claim.folder,
        **{
            k: claim.verdict_record.get(k)
            for k in (
                "prediction",
                "observed",
                "holds",
                "reason",
                "golden_path",
                "key",
                "key_value",
                "exploratory",
                "numbers",
            )
        },
        "contradiction": judge(entry, claim.verdict_record["numbers"]) if outcome == "xfailed" else None,
        "artifacts": claim.artifacts,
        "outcome": outcome,
        "message": message,
        "duration": 1.5,
    }


def build(root: Path, changes=None) -> list[dict]:
    records = [record(root, *c) for c in CASES]
    write_report(
        records,
        root,
        {"tier": "quick", "device": "cpu", "dtype": "float64", "git_commit": "0" * 40, "pid": os.getpid()},
        changes=changes,
    )
    return records


def large(n_families: int = 20, n_causes: int = 14) -> list[dict]:
    """Records shaped like a full quick tier, without files: ``n_families`` families over 27 grid
    columns (up to 7 cases in a cell), every 7th case a strict xfail, over ``n_causes`` root causes."""
    regimes = [
        (r, t, d)
        for r in ("saddle", "intermediate", "ntk")
        for t in ("lowrank", "fullrank", "degenerate")
        for d in (2, 3)
    ]
    regimes += [("saddle", "lowrank", 4), ("calib", "prior", 3), ("calib", "quadratic", 2)]
    regimes += [("sampling", "free", d) for d in (2, 3, 4)] + [("sampling", "nonstrict", d) for d in (3, 4)]
    regimes += [("other", "", "")]  # a case id without regime-teacher-depth: the grid's "other" column
    readings = [("agrees", "differs"), ("differs", "agrees"), ("n/a", "assumption-fails"), ("n/a", "n/a")]
    records, k = [], 0
    for f in range(n_families):
        family = f"family_number_{f:02d}"
        holds_reading, contradicted_reading = readings[f % len(readings)]
        info = {
            "group": ("golden path", "assumptions", "calibration", "saddles")[f % 4],
            "if_holds": holds_reading,
            "if_contradicted": contradicted_reading,
            "question": f"question {f}?",
        }
        for c, (regime, teacher, depth) in enumerate(regimes):
            for test in range((f * 7 + c * 3) % 8 if (f + c) % 2 == 0 else 0):
                k += 1
                xfailed = k % 7 == 0
                case = f"{regime}-{teacher}-L{depth}" if depth else f"other-case-{test}"
                records.append(
                    {
                        "nodeid": f"claims/test_{family}.py::test_{test}[{case}]",
                        "family": family,
                        "family_info": info,
                        "case": case,
                        "params": {},
                        "folder": None,
                        "prediction": "a prediction",
                        "observed": "",
                        "holds": not xfailed,
                        "reason": "",
                        "golden_path": None,
                        "key": None,
                        "key_value": None,
                        "exploratory": False,
                        "numbers": {},
                        "contradiction": {
                            "cause": f"root-cause-{k // 7 % n_causes}",
                            "cause_text": "why",
                            "statement": "now",
                        }
                        if xfailed
                        else None,
                        "artifacts": [],
                        "outcome": "xfailed" if xfailed else "passed",
                        "message": "",
                        "duration": 1.0,
                    }
                )
    return records
