"""What the run says about the golden path: the one place mapping verdicts to findings.

A claim's verdict says whether the theory's prediction held; the finding says what the data
say about the research question "does SGD follow GD's golden path?". ``FAMILIES`` (in the
order the report shows them) gives, per claim family, its group and the finding when the
prediction holds / is contradicted. A claim overrides it per case with
``claim.verdict(..., golden_path=...)``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass

from dlncheck.presets import REGIMES, TEACHERS


@dataclass(frozen=True)
class Family:
    group: str  # golden path | assumptions | calibration | saddles | other
    if_holds: str  # finding when the prediction holds
    if_contradicted: str  # finding when the data contradict it
    question: str  # what the family asks, one line
    results: tuple[tuple[str, str], ...] = ()  # (regex on "test[case]", result): a "reproduces" line each


A, D, F, NA = "agrees", "differs", "assumption-fails", "n/a"
FAMILIES: dict[str, Family] = {
    "function_space": Family("golden path", A, D, "does SGD's end-to-end map stay within tolerance of GD's?"),
    "rank_patterns": Family(
        "golden path", A, D, "do SGD's partial products W_j..W_i pass the same rank patterns as GD's?"
    ),
    "singular_patterns": Family("golden path", A, D, "do SGD's singular values of every partial product track GD's?"),
    "parameter_space": Family(
        "golden path",
        D,
        A,
        "is the raw GD-SGD parameter distance mostly gauge? (a contradiction: SGD stays in GD's gauge)",
    ),
    "gd_trap": Family(
        "golden path",
        D,
        A,
        "does SGD leave a saddle where GD stays trapped?",
        (
            (r"\[trapped-", "det-sign trap: GD stays on the plateau P = s_min^2/2, SGD escapes it"),
            (r"\[free-", "no det-sign barrier: GD and every SGD run converge to M"),
        ),
    ),
    "escape_lag": Family(
        "golden path",
        D,
        D,
        "do SGD's escapes lag GD's by the first-order amount of reshuffled SGD's modified loss?",
        (
            (r"test_escape_lag\[saddle-", "SGD's escapes lag GD's by the predicted lr c_B amount"),
            (r"test_escape_lag_slope\[", "the escape lag vanishes linearly in lr c_B"),
        ),
    ),
    "scaling": Family(
        "golden path",
        NA,
        NA,
        "how does the SGD-GD gap scale with lr and batch size?",
        tuple(
            (rf"test_scaling_slope\[{name}-", f"{name.replace('_', ' ')} vanishes with the derived slope")
            for name in (
                "d_sigma",
                "balance_gap",
                "theta_distance",
                "function_distance",
                "sigma_spread",
                "function_distance_mid",
            )
        )
        + ((r"test_offset_prediction\[", "derived SGD offset of the internal log singular values (lr^2 c_B)"),),
    ),
    "sgd_spread": Family("golden path", NA, NA, "is SGD's run-to-run spread around GD the linearised prediction?"),
    "scaling_saddles": Family(
        "saddles",
        NA,
        F,
        "are GD's plateaus the saddles theory predicts?",
        ((r"\[", "GD's plateaus have the predicted lambda_min; the end point is a minimum"),),
    ),
    "balance": Family("assumptions", NA, F, "do the layers stay balanced, as the theory assumes?"),
    "mode_decoupling": Family("assumptions", NA, F, "do the teacher's modes evolve independently?"),
    "regimes": Family("assumptions", NA, F, "does each preset sit in the regime it is named after?"),
    "theory_agreement": Family("assumptions", NA, F, "does GD follow the closed-form scalar dynamics?"),
    "init_scale": Family(
        "assumptions",
        NA,
        NA,
        "do GD's escape times follow the init-scale law, and do the L >= 3 window and alignment "
        "contradictions vanish as a0 -> 0?",
    ),
    "published": Family(
        "assumptions",
        NA,
        F,
        "do published results reproduce?",
        (
            (r"\[diffusion-peak-", "diffusion peaks before learning (arXiv:2604.06366)"),
            (r"\[stationary-collapse-", "no label noise: SGD collapses onto GD's fixed point (arXiv:2604.06366)"),
            (
                r"\[stationary-boltzmann-iid-",
                "label noise: Boltzmann law at temperature ~ lr x noise / B (arXiv:2604.06366, independent batches)",
            ),
            (
                r"\[stationary-boltzmann-shuffled-",
                "label noise: the same law for epoch-reshuffled batches (derived here)",
            ),
            (
                r"\[balance-noise-",
                "law of balance: SGD drifts toward noise balance, GD conserves D_l (arXiv:2308.06671)",
            ),
            (
                r"\[rank-deficiency-",
                "label-noise SGD shrinks det(Theta^T Theta), GD keeps it (Varre, Sagitova & Flammarion, NeurIPS 2024)",
            ),
            (r"\[drift-identity-", "law of balance = the suite's drift identity (theory.sgd, label residuals kept)"),
            (r"\[rank-departure-", "label-noise SGD's rank pattern leaves GD's for good, GD keeps it (Varre et al.)"),
        ),
    ),
    "rank_recovery": Family("calibration", NA, NA, "does the rank estimator recover planted ranks?"),
    "eps_sensitivity": Family("calibration", NA, NA, "are rank readings stable over a plateau of eps?"),
    "unit_step_growth": Family("calibration", NA, NA, "does the unit-step growth measure what it should?"),
    "strict_saddles": Family("saddles", NA, F, "are the saddles strict (a negative Hessian eigenvalue)?"),
    "saddle_sampling": Family(
        "saddles",
        NA,
        F,
        "does the sampler find every saddle class?",
        (
            (r"\[sampling-calib-", "calibrated sampler: MALA / SGLD match the closed-form p_beta"),
            (r"\[sampling-free-", "free chains reach the variety; certified kind == oracle; diversity > null"),
            (r"\[sampling-nonstrict-", "norm-targeted chains: none non-strict at L = 3, non-strict reached at L = 4"),
            (r"\[sampling-empirical-", "empirical path: chi2 law of the data error; refined points certified"),
        ),
    ),
}
GROUPS = ("golden path", "assumptions", "calibration", "saddles", "other")
UNKNOWN = Family("other", NA, NA, "")
LABEL = {A: "SGD follows GD", D: "SGD differs from GD", F: "theory's assumption fails", NA: "not about the golden path"}
SYMBOL = {A: "=", D: "≠", F: "!", NA: "·"}


def symbol(finding: str, holds: bool | None) -> str:
    """The cell's mark: the finding's symbol; for n/a cells whether the prediction held."""
    if finding != NA:
        return SYMBOL[finding]
    return {True: "✓", False: "✗", None: "·"}[holds]


XFAIL_MEANS = (
    "xfailed = a measured contradiction: the assertion stays as the theory states it, the "
    "data contradict it, and the case is a strict xfail (it turns into a failure, XPASS, "
    "the day the data agree)."
)
_CASE = re.compile(r"(?P<regime>[a-z]+)-(?P<teacher>[a-z]+)-L(?P<depth>\d+)")


def family(name: str) -> Family:
    return FAMILIES.get(name, UNKNOWN)


def family_order(names) -> list[str]:
    """Known families in ``FAMILIES`` order, then unknown ones alphabetically."""
    known = [f for f in FAMILIES if f in names]
    return known + sorted(set(names) - set(known))


def golden_path(rec: dict) -> str:
    """The record's finding: the claim's own ``golden_path`` if given, else the family default;
    ``n/a`` when the test did not reach a verdict (error, skip) or no verdict was recorded."""
    if rec.get("golden_path"):
        return rec["golden_path"]
    if rec.get("holds") is None or rec.get("outcome") in ("error", "skipped"):
        return NA
    fam = family(rec["family"])
    return fam.if_holds if rec["holds"] else fam.if_contradicted


def case_key(rec: dict) -> tuple[str, str, str] | None:
    """(regime, teacher, depth) from the params or the case id, None for other cases."""
    p = rec.get("params") or {}
    if {"regime", "teacher", "depth"} <= set(p):
        return str(p["regime"]), str(p["teacher"]), str(p["depth"])
    m = _CASE.search(rec.get("case", ""))
    return (m["regime"], m["teacher"], m["depth"]) if m else None


def _order(values, preferred) -> list:
    return sorted(values, key=lambda v: (preferred.index(v) if v in preferred else len(preferred), v))


def grid(records: list[dict]) -> dict:
    """Family x case grid: ``columns`` [(regime, teacher, depth)] (+ ``other``), ``rows``
    [(family, Family, {column: [records]})] in report order."""
    keys = {case_key(r) for r in records} - {None}
    columns = [
        (r, t, d)
        for r in _order({k[0] for k in keys}, REGIMES)
        for t in _order({k[1] for k in keys}, TEACHERS)
        for d in sorted({k[2] for k in keys}, key=int)
        if (r, t, d) in keys
    ]
    if any(case_key(r) is None for r in records):
        columns.append("other")
    cells: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        cells[rec["family"]][case_key(rec) or "other"].append(rec)
    rows = [(f, family(f), dict(cells[f])) for f in family_order(cells)]
    return {"columns": columns, "rows": rows}


def contradictions(records: list[dict]) -> list[dict]:
    """Distinct measured contradictions (xfailed): one entry per (family, reason) with its cases."""
    groups: dict[tuple, list] = defaultdict(list)
    for rec in records:
        if rec["outcome"] == "xfailed":
            groups[(rec["family"], xfail_reason(rec))].append(rec)
    order = family_order({f for f, _ in groups})
    return [
        {"family": f, "reason": why, "finding": golden_path(recs[0]), "records": recs}
        for (f, why), recs in sorted(groups.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1]))
    ]


def xfail_reason(rec: dict) -> str:
    first = (rec.get("message") or "").split("\n", 1)[0]
    return first.removeprefix("data contradict the prediction: ").strip() or "(no reason given)"


def summary(records: list[dict]) -> str:
    """The paragraph a reader would write after the run: findings per family, then counts."""
    by_family: dict[str, Counter] = defaultdict(Counter)
    for rec in records:
        by_family[rec["family"]][golden_path(rec)] += 1
    parts = []
    for fam in family_order(by_family):
        c = by_family[fam]
        said = [f"{LABEL[k]} in {c[k]}" for k in (A, D, F) if c[k]]
        if said:
            parts.append(f"{fam.replace('_', ' ')}: {', '.join(said)} of {sum(c.values())} cases")
    outcomes = Counter(r["outcome"] for r in records)
    xf = len(contradictions(records))
    text = (
        f"{len(records)} claim cases ran. "
        + ("; ".join(parts) + ". " if parts else "No case says anything about the golden path. ")
        + f"{outcomes['xfailed']} measured contradictions ({xf} distinct reasons)"
    )
    bad = [f"{outcomes[k]} {k}" for k in ("failed", "error", "xpassed") if outcomes[k]]
    return text + (f"; needs attention: {', '.join(bad)}." if bad else "; no unexpected failure.")


def reproductions(records: list[dict]) -> list[dict]:
    """One line per tested result (``Family.results``): whether it reproduces here, i.e. the
    prediction held, in how many of its cases that reached a verdict, with the golden-path reading.
    Entries: ``family``, ``result``, ``text``, ``records``."""
    lines = []
    for fam in family_order({r["family"] for r in records}):
        recs = [r for r in records if r["family"] == fam]
        for pattern, result in family(fam).results:
            hit = [r for r in recs if re.search(pattern, r["nodeid"].split("::")[-1])]
            decided = [r for r in hit if r.get("holds") is not None]
            if not hit:
                continue
            held = sum(bool(r["holds"]) for r in decided)
            said = (
                "reproduces"
                if decided and held == len(decided)
                else ("does not reproduce" if decided and held == 0 else "partly reproduces" if decided else "not run")
            )
            paths = Counter(golden_path(r) for r in decided if golden_path(r) != NA)
            path = f"; golden path: {', '.join(f'{LABEL[k]} ({n})' for k, n in paths.items())}" if paths else ""
            lines.append(
                {
                    "family": fam,
                    "result": result,
                    "records": hit,
                    "text": f"{result}: {said} ({held} of {len(decided)} cases{path})",
                }
            )
    return lines
