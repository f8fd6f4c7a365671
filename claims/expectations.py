"""The expectations table: every prediction row and every measured contradiction of the claims,
keyed by claim family (the module name without ``test_``) and case id, in one visible place
(as scikit-learn keeps its expected failures), plus the one helper that builds a family's cases.

A claim module keeps only its test functions and figures: it reads its rows here
(``PREDICTIONS[family][regime]``), builds its parameters with :func:`cases` (depths and tiers
from :mod:`dlncheck.presets`), and its measured contradictions are marked from
``CONTRADICTIONS[family]`` by :func:`contradicted` (strict xfail, AssertionError only: the
assertion stays as the theory states it, and an XPASS fails the suite the day data agree).
Derivations of the predicted numbers live in :mod:`dlncheck.theory`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

import pytest
import torch

from dlncheck import presets, stagewise
from dlncheck.report.claim import Prediction

__all__ = ["CONTRADICTIONS", "PREDICTIONS", "Prediction", "cases", "contradicted", "rank_levels",
           "stagewise_prediction", "table_cases"]


# ------------------------------------------------------------------------------ helpers
def contradicted(reason: str) -> pytest.MarkDecorator:
    """Mark a case whose data contradict the theory's prediction, as measured.

    The assertion stays as the theory states it; the strict xfail (AssertionError only) keeps
    the suite green while the report shows the case as ``xfailed`` with ``reason``, and turns
    into a failure the day the data start to agree (XPASS), so the table gets revisited.
    """
    return pytest.mark.xfail(strict=True, raises=AssertionError,
                             reason=f"data contradict the prediction: {reason}")


#: a family's variants of one preset: (id suffix, extra parameter values)
Variants = Callable[[str, str, int], Iterable[tuple[str, tuple]]]
#: which presets (and variants) run in the quick tier: f(regime, teacher, depth, *values) -> bool
Quick = Callable[..., bool]


def _quick_depths(regime: str, teacher: str, depth: int, *values: object) -> bool:
    return depth in presets.DEPTHS["quick"]


def deepest_quick(regime: str, teacher: str, depth: int, *values: object) -> bool:
    """Quick tier at the deepest quick depth only (the costlier GD-vs-SGD pattern claims)."""
    return depth == presets.DEPTHS["quick"][-1]


def cases(family: str, *, regimes: Sequence[str] | None = None, quick: Quick = _quick_depths,
          variants: Variants | None = None) -> list:
    """``pytest.param(regime, teacher, depth, *values)`` for every preset of the nightly grid.

    Ids read ``saddle-lowrank-L3`` (plus a variant's suffix, e.g. ``-random``); cases for which
    ``quick`` is False carry ``pytest.mark.nightly``; ids listed in ``CONTRADICTIONS[family]``
    carry :func:`contradicted` with the measured reason.
    """
    contradictions = CONTRADICTIONS.get(family, {})
    params = []
    for regime, teacher, depth in presets.cases("nightly"):
        if regimes is not None and regime not in regimes:
            continue
        cid = presets.case_id(regime, teacher, depth)
        for suffix, values in (variants(regime, teacher, depth) if variants else [("", ())]):
            marks = [] if quick(regime, teacher, depth, *values) else [pytest.mark.nightly]
            if cid + suffix in contradictions:
                marks.append(contradicted(contradictions[cid + suffix]))
            params.append(pytest.param(regime, teacher, depth, *values, id=cid + suffix, marks=marks))
    unknown = set(contradictions) - {p.id for p in params}
    if unknown:
        raise ValueError(f"CONTRADICTIONS[{family!r}] names cases that do not exist: {sorted(unknown)}; "
                         "fix the ids (e.g. 'saddle-lowrank-L3')")
    return params


def table_cases(quick: Sequence, nightly: Sequence) -> list:
    """``pytest.param(row, id=row.id)`` for a family with its own case table (not presets)."""
    return [pytest.param(c, id=c.id) for c in quick] + [
        pytest.param(c, id=c.id, marks=pytest.mark.nightly) for c in nightly]


# -------------------------------------------------------------- stagewise growth (shared)
def stagewise_prediction(regime: str, teacher: str, init: str = "preset") -> Prediction:
    """The stagewise row (regime x teacher x init) shared by unit-step growth and eps sensitivity;
    ``kind`` is the predicted growth: "unit" | "multiplicity" | "coarse" | "none" | "weyl".

    ``init``: "aligned" (the saddle preset: every mode starts at the same u0), "random" (an
    ensemble of small balanced and Gaussian inits) or "preset" (the regime's own init). Two
    init-dependent rules are applied per init by the claim (theory/trap.py): a *balanced* init
    with det(W_0) det(M) < 0 traps GD below full rank (GD's staircase ends at r - 1, SGD's at
    r - 1 or r); an NTK init with det(W_0) det(M) < 0 must cross det W = 0, so "rank >= r
    throughout" becomes "rank >= r - 1 throughout, r at the end".
    """
    if regime == "saddle" and teacher in ("lowrank", "fullrank"):
        return Prediction("rank 0 -> 1 -> ... -> r in unit steps, monotone, for GD and every SGD run of every init",
                          "small init: distinct s_a escape one at a time, larger s first (Saxe 2014; Jacot 2021)",
                          kind="unit")
    if regime == "saddle" and init == "aligned":
        return Prediction("GD jumps by the multiplicity of each repeated s (levels 0, m1, m1+m2, ... only); every SGD "
                          "run visits the same levels in order (it may split a repeated block: timing)",
                          "aligned init: the modes of a repeated s start with equal strength and GD keeps the "
                          "symmetry, so they escape together; SGD's noise breaks the symmetry, which only "
                          "reorders the sub-steps inside the block", kind="multiplicity")
    if regime == "saddle":
        return Prediction("GD and every SGD run share the staircase up to timing: monotone from 0 to r through every "
                          "multiplicity level (0, m1, m1+m2, ...); inside a repeated block a run may split or jump",
                          "random small init: the modes of a repeated s start with different strengths, so "
                          "they escape at different times (ln(u_a/u_b)/(2s) apart at L=2) for GD too; which "
                          "splits are resolved is timing, the long plateaus are the staircase", kind="coarse")
    if regime == "ntk":
        return Prediction("no stagewise growth: rank >= r from the first checkpoint (rank >= r - 1 throughout and r "
                          "at the end where det(W_0) det(M) < 0)",
                          "large init: W(0) is already full rank at the floor and moves lazily; a square W whose "
                          "det sign disagrees with M's must pass through a singular W (theory/trap.py)", kind="none")
    return Prediction("only Weyl: final rank >= #{a : s_a - ||W-M||_F > eps max(sigma_1, s_1)}",
                      "intermediate init: no theory of the growth pattern", exploratory=True, kind="weyl")


def rank_levels(pred: Prediction, s: torch.Tensor) -> list[int]:
    """The rank levels a staircase must visit: 0..r (unit) or the cumulative multiplicities."""
    coarse = pred.kind in ("multiplicity", "coarse")
    return stagewise.multiplicity_levels(s) if coarse else list(range(int((s > 0).sum()) + 1))


# ------------------------------------------------------------- tolerances named in rows
MIN_FRACTION = 0.9     # saddle: t_cross <= t_diag for >= 90% of (mode, run) pairs
DWELL_RTOL = 0.05            # "on plateau k": loss within 5% of P_k
DWELL_FACTOR = (0.5, 1.5)    # saddle: every run's dwell within this factor of gradient flow's
MIN_THEORY_DWELL = 0.03      # saddle: the flow itself must sit >= 3% of the run on each plateau
SADDLE_MOVEMENT = 3.0        # saddle: ||theta_T - theta_0|| / ||theta_0|| >= 3 (>> 1: tiny init grows to O(1))
MOVEMENT_RTOL = 0.1          # saddle: movement within 10% of the aligned gradient-flow prediction
NTK_MAX_DWELL = 0.02         # ntk: < 2% of the run within 5% of any intermediate plateau
NTK_MOVEMENT = 3.0           # ntk: movement <= NTK_MOVEMENT / sqrt(width) (lazy: O(w^{-1/2}))


# ------------------------------------------------------------------- prediction rows
PREDICTIONS: dict[str, dict[str, Prediction]] = {
    "balance": {
        "saddle": Prediction(
            "r_l(0) >= 0.1, falls as the weights grow; GD ends within x2 of ||D_l(0)||/(2 sqrt(sum s^{4/L})); "
            "every SGD run ends below its drift bound and below r_l(0)",
            "small random init (Gaussian, same rms scale as the aligned preset): D_l(0) is O(init^2) and conserved "
            "by the flow, while ||W_l W_l^T|| grows "
            "to sqrt(sum_a s_a^{4/L}) (balanced solution); SGD adds lr^2 noise drift, bounded by the identity"),
        "aligned": Prediction(
            "r_l stays below the accumulated-drift bound (D_l(0) = 0); GD stays exactly balanced: r_l <= 1e-12",
            "aligned balanced init: D_l(0) = 0 and the per-mode GD map keeps layers equal, so only "
            "the lr^2 drift (zero for GD, noise for SGD) can unbalance them"),
        "ntk": Prediction(
            "r_l stays O(1): r_l(t) >= 0.1 and r_l(T)/r_l(0) in [1/2, 2] for every run",
            "large init: weights move by O(1/sqrt(width)) relative to their size, so the initial "
            "imbalance of independent Gaussian layers persists (balance is never reached)"),
        "intermediate": Prediction(
            "only the drift identity and its bound (theory silent on the level of r_l)",
            "neither conserved-D domination (saddle) nor lazy training (ntk) applies", exploratory=True),
    },
    "mode_decoupling": {
        "saddle": Prediction(f"t_cross(a) <= t_diag(a) for >= {MIN_FRACTION:.0%} of (mode, run) pairs",
                             "small random init: during each plateau the layers align with the teacher's "
                             "singular vectors before the mode is learned (silent alignment, Atanasov, "
                             "Bordelon & Pehlevan, ICLR 2022; Saxe et al. 2014)"),
        "ntk": Prediction(f"t_cross(a) <= t_diag(a) for < {MIN_FRACTION:.0%} of pairs (no alignment phase)",
                          "large init: W(0) is already O(1) in all directions and moves lazily; cross "
                          "modes only shrink as W converges, i.e. after the diagonal is large"),
        "intermediate": Prediction("only the guaranteed bound rho_a(T) <= ||W-M||/(s_a - ||W-M||)",
                                   "timing of alignment is not predicted between the two limits", True),
    },
    "parameter_space": {   # kind: the asserted condition on FACTOR (raw / gauge-aligned ratio)
        "saddle": Prediction("raw distance >= 2 x gauge-aligned distance",
                             "seed: GD and SGD select different symmetries at the saddles, so most of the raw "
                             "distance is gauge", kind="factor >= 2"),
        "ntk": Prediction("gauge-aligned distance within 10% of raw (factor <= 1.1)",
                          "lazy regime: weights stay near the shared init, no rotation of hidden units to undo",
                          kind="factor <= 1.1"),
        "intermediate": Prediction("function-space distance at the end below the raw "
                                   "parameter-space ratio (seed: raw large because of symmetries, function small)",
                                   "theory silent on the gauge share here; exploratory", exploratory=True,
                                   kind="function < raw"),
    },
    "rank_patterns": {
        "saddle": Prediction("d_r = 0 and every GD r_ij inside the SGD 95% bootstrap CI at "
                             "every plateau checkpoint (outside escape windows and GD's rank transitions)",
                             "golden path: on a plateau every run sits near the same saddle, whose rank "
                             "pattern is fixed by how many modes have escaped (Saxe 2014); SGD noise only "
                             "shifts escape times, so disagreement is confined to escape windows",
                             kind="plateaus"),
        "ntk": Prediction("d_r = 0 with GD inside the SGD CI at every checkpoint "
                          "except next to GD's own rank transitions",
                          "lazy regime: all runs stay within O(1/sqrt(width)) of the shared init and follow "
                          "the same linearised path (Jacot 2018), so SGD crosses the floor only where GD "
                          "does (unlearned directions decaying to 0), up to timing jitter", kind="off-transition"),
        "intermediate": Prediction("d_r = 0 with GD inside the SGD CI at the last checkpoint; "
                                   "along the way exploratory",
                                   "theory is silent on the path; at convergence both fit the same M "
                                   "from the same init", exploratory=True, kind="final"),
    },
    "regimes": {
        "saddle": Prediction(
            f"every run dwells on each intermediate plateau for {DWELL_FACTOR[0]}-{DWELL_FACTOR[1]}x the "
            f"gradient-flow dwell (itself >= {MIN_THEORY_DWELL:.0%} of the run); final movement >= "
            f"{SADDLE_MOVEMENT:g} and within {MOVEMENT_RTOL:.0%} of the flow's (theory.aligned_movement)",
            "aligned tiny init: modes escape one by one at Saxe's times (Saxe et al. 2014), weights grow "
            "from ~scale to ~s^{1/L}"),
        "ntk": Prediction(
            f"no plateau: dwell < {NTK_MAX_DWELL:.0%} of the run on every intermediate plateau; "
            f"movement <= {NTK_MOVEMENT:g}/sqrt(width)",
            "wide LeCun init: the tangent kernel barely changes, the loss decays at its rates "
            "(Jacot et al. 2018); weights move O(w^{-1/2}) relative to their size"),
        "intermediate": Prediction(
            "movement strictly between the ntk and saddle presets of the same teacher and depth; "
            "plateau dwell recorded only",
            "gamma = 1 boundary of Jacot et al. 2021: theory gives no plateau prediction", exploratory=True),
    },
    "singular_patterns": {
        "saddle": Prediction("top-r log singular values of every P_ij at the end agree within the SGD noise level",
                             "golden path: SGD converges to the same balanced factorization of M as GD; "
                             "its spread across runs is the only scale of disagreement"),
        "ntk": Prediction("same, within the SGD noise level",
                          "lazy: weights move O(1/sqrt(width)) from the shared init"),
        "intermediate": Prediction("same, within the SGD noise level", "theory silent on the path; exploratory",
                                   exploratory=True),
    },
    "theory_agreement": {
        "saddle": Prediction("escapes in order of decreasing s, each within x2 of escape_time(s, u0_eff)",
                             "small init: modes sit on the saddle until their own growth escapes it; the "
                             "plateau is set by s and the initial projection (Saxe 2014, Jacot 2021)"),
    },  # intermediate / ntk: no random-init escape-time theory (no separated plateaus); not run
}
THEORY_AGREEMENT_ALIGNED_REASON = (
    "aligned balanced init keeps the modes decoupled exactly, so GD is the scalar map "
    "per mode and gradient flow is Saxe's solution (L=2) / the mode ODE (L>=3), in every regime")


# ---------------------------------------------------------- families with own case tables
@dataclasses.dataclass(frozen=True)
class RecoveryCase:
    """A rank-recovery case: noise model, dtype, levels per tier, the checks asserted and why."""

    id: str
    model: str
    dtype: torch.dtype
    levels: tuple            # quick tier: sigma (gaussian) or sample counts n (proxy)
    nightly_levels: tuple
    checks: tuple
    reason: str
    label_noise: float = 0.0
    seed: int = 0


RANK_RECOVERY_CASES = [
    RecoveryCase("gaussian-strong-float64", "gaussian", torch.float64,
                 (1e-10, 1e-8, 1e-6, 1e-4, 1e-2), tuple(10.0**k for k in range(-11, -1)), ("contains",),
                 "s_r = 1 >= 7.9 x noise edge (12.6 sigma) at every sigma <= 1e-2: noise values stay below "
                 "the edge, outliers sit at the BGN locations, so r is counted between the two", seed=1),
    RecoveryCase("gaussian-strong-float32", "gaussian", torch.float32,
                 (1e-8, 1e-6, 1e-4, 1e-2), tuple(10.0**k for k in range(-9, -1)), ("contains",),
                 "same signal held in float32: the floor is max(noise floor, 48 x 1.2e-7 = 5.7e-6)", seed=2),
    RecoveryCase("gaussian-subthreshold-float64", "gaussian", torch.float64,
                 (0.3, 0.5, 1.0), (0.25, 0.3, 0.4, 0.5, 0.7, 1.0), ("none",),
                 "s_r = 1 < sigma (m n)^(1/4) = 6.3 sigma: the r-th mode sinks into the Marchenko-Pastur "
                 "bulk (BBP transition), no gap separates sigma_r from sigma_{r+1}", seed=3),
    RecoveryCase("proxy-noiseless-float64", "proxy", torch.float64,
                 (64, 256, 1024), (32, 64, 256, 1024, 2048), ("contains",),
                 "X X^T / n = I exactly, so M_hat = M (X X^T / n) = M has exact rank r; only roundoff "
                 "(floor 48 u = 1.1e-14) remains, so every eps from 1e-13 to the ceiling recovers r", seed=4),
    RecoveryCase("proxy-labelnoise-float64", "proxy", torch.float64,
                 (64, 256, 1024), (32, 64, 256, 1024, 2048), ("contains",),
                 "label noise tau = 0.05: M_hat - M = (tau / n) E X^T is i.i.d. N(0, tau^2 / n), so the "
                 "Gaussian theory holds at sigma_eff = tau / sqrt(n)", label_noise=0.05, seed=5),
    RecoveryCase("exact-lowrank-float32", "gaussian", torch.float32, (0.0,), (0.0,),
                 ("contains", "roundoff"),
                 "rounding M to float32 lifts the zero singular values to ~u sigma_1 (u = 1.2e-7): "
                 "eps <= 5.7e-9 counts them all; eps above 48 u recovers r", seed=6),
    RecoveryCase("exact-lowrank-float64", "gaussian", torch.float64, (0.0,), (0.0,), ("contains",),
                 "float64 roundoff floor 48 u = 1.1e-14: every eps from 1e-13 to the signal ceiling "
                 "s_r / s_1 = 0.25 (/2) recovers r", seed=6),
]


@dataclasses.dataclass(frozen=True)
class SaddleCase:
    """A strict-saddle case: depth, rank, learned set, fixed zero blocks and the predicted kind."""

    L: int
    r: int
    top: bool                # learned set S = top-r, else S = {0..r-2, r} (swaps the r-th for the (r+1)-th)
    zeros: tuple | None      # fixed zero residual blocks (1-based); None = free SGLD
    kind: str                # predicted kind; "oracle" = read per sample from the structure
    reason: str
    width: int = 5
    chains: int = 6

    @property
    def id(self) -> str:
        pat = "free" if self.zeros is None else "zeros" + "".join(map(str, self.zeros))
        w = "" if self.width == 5 else f"-w{self.width}"
        return f"saddle-L{self.L}-r{self.r}-{'top' if self.top else 'nottop'}-{pat}{w}"

    @property
    def S(self) -> list[int]:
        return list(range(self.r)) if self.top else list(range(self.r - 1)) + [self.r]


TWO = "two zero blocks a<b: perturbing Z_a, Z_b opens sigma-coupled residual path at second order"
THREE = "every residual escape needs >= 3 blocks moved together (third-order escape): PSD Hessian"
SWAP = "S not top-r: rotating learned u_j into larger unlearned u_k descends at second order"
DEPTH2 = "depth 2: every non-global critical point is a strict saddle (Baldi & Hornik 1989)"
FREE = "free chains: certified kind equals the oracle's structural reading of each low-energy sample"

STRICT_SADDLES_QUICK = [
    SaddleCase(2, 1, True, (1, 2), "strict", DEPTH2),
    SaddleCase(2, 1, False, (1, 2), "strict", SWAP),
    SaddleCase(3, 1, True, (1, 2), "strict", TWO),
    SaddleCase(3, 1, True, (1, 3), "strict", TWO),
    SaddleCase(3, 1, True, (1, 2, 3), "non-strict", THREE),
    SaddleCase(3, 1, False, (1, 2, 3), "strict", SWAP),
    SaddleCase(2, 1, True, None, "oracle", FREE),
    SaddleCase(3, 1, True, None, "oracle", FREE),
]
STRICT_SADDLES_NIGHTLY = [
    SaddleCase(3, 1, True, (2, 3), "strict", TWO),
    SaddleCase(3, 2, True, (1, 3), "strict", TWO),
    SaddleCase(3, 2, True, (1, 2, 3), "non-strict", THREE),
    SaddleCase(2, 2, True, (1, 2), "strict", DEPTH2),
    SaddleCase(3, 1, True, (1, 3), "strict", TWO, width=8, chains=16),
    SaddleCase(3, 1, True, (1, 2, 3), "non-strict", THREE, width=8, chains=16),
    SaddleCase(4, 1, True, (1, 4), "strict", TWO),
    SaddleCase(4, 1, True, (2, 3), "strict", TWO),
    SaddleCase(4, 1, True, (1, 2, 4), "non-strict", THREE),
    SaddleCase(4, 1, True, (1, 2, 3, 4), "non-strict", THREE),
    SaddleCase(4, 2, True, (1, 3, 4), "non-strict", THREE),
    SaddleCase(4, 1, False, (1, 2, 3), "strict", SWAP),
    SaddleCase(4, 1, True, None, "oracle", FREE),
    SaddleCase(3, 2, True, None, "oracle", FREE, width=8, chains=16),
]


# -------------------------------------------------------------- measured contradictions
FACTORIZATION_OFFSET = (
    "SGD ends on a systematically different factorization: GD's internal log singular values sit "
    "3-20x the SGD spread away from the SGD mean (e.g. saddle-lowrank P_22: 0.011 vs tol 0.0006) "
    "while W agrees to 1e-5; suspected (not yet tested) cause: SGD's lr^2 balance drift, see the "
    "balance claim")
CONTRADICTIONS: dict[str, dict[str, str]] = {
    "eps_sensitivity": {},
    "mode_decoupling": {
        'saddle-lowrank-L3': (
            'at L=3 the later modes reach half strength about one checkpoint before rho_a <= 0.1 (GD t_cross 12.81 '
            'vs t_diag 12.66 for mode 2): 67% of (mode, run) pairs align first, not >= 90%'),
        'saddle-fullrank-L3': (
            'at L=3 modes 2 and 4 reach half strength before rho_a <= 0.1 in every run (GD t_cross 20.5 vs t_diag '
            '19.3): 75% of pairs, not >= 90%'),
    },
    "parameter_space": {
        'saddle-lowrank-L3': (
            "from the aligned init SGD stays in GD's gauge: raw/gauge-aligned factor 1.00 (ratio at end "
            "0.011-0.019, cosine >= 0.9998); the seed's 'GD and SGD select different symmetries' does not happen "
            "here"),
        'saddle-fullrank-L3': (
            "from the aligned init SGD stays in GD's gauge: raw/gauge-aligned factor 1.00 (ratio at end "
            "0.011-0.019, cosine >= 0.9998); the seed's 'GD and SGD select different symmetries' does not happen "
            "here"),
        'saddle-degenerate-L3': (
            "from the aligned init SGD stays in GD's gauge: raw/gauge-aligned factor 1.00 (ratio at end "
            "0.011-0.019, cosine >= 0.9998); the seed's 'GD and SGD select different symmetries' does not happen "
            "here"),
    },
    "rank_patterns": {
        'ntk-lowrank-L3': (
            "SGD crosses the absolute floor at other times than GD away from GD's own transitions: 18 of 176 "
            "checkpoints disagree (max d_r 1) as the unlearned directions decay"),
        'ntk-fullrank-L3': (
            "one SGD run's W dips transiently below the floor (rank 3) where GD does not: 1 of 128 checkpoints"),
        'ntk-degenerate-L3': (
            "SGD crosses the absolute floor at other times than GD away from GD's own transitions: 23 of 174 "
            "checkpoints disagree (max d_r 0.75)"),
    },
    "singular_patterns": {presets.case_id(r, t, 3): FACTORIZATION_OFFSET
                          for r in presets.REGIMES for t in presets.TEACHERS},
    "unit_step_growth": {
        'saddle-fullrank-L4-random': (
            '(nightly) 13 of 32 random inits end below rank 4 in every run, GD and SGD alike (19/32 hold, Wilson '
            '[0.42, 0.74]): Gaussian seeds 0, 2-4, 7, 8, 10-13 end at rank 3, 8 of these 10 with det(W0) det(M) < 0 '
            '(a small Gaussian init is nearly balanced, so the det-sign barrier of theory/trap.py holds it although '
            'it is not exact); balanced seeds 3, 9, 15 (signs agree, not trapped) end at rank 3, 2, 2: the slowest '
            'escape is not over by T = 210.6 although the decoupled escape time from the init projection is <= 197.6'),
        'saddle-lowrank-L4-random': (
            '(nightly) 30/32 inits hold (Wilson [0.80, 0.98]); the run ends inside the last escape for two: balanced '
            'seed 8 ends at rank 2 in all 33 runs (the s = 1 mode has not escaped by T = 103.8), Gaussian seed 3 '
            'has GD at rank 3 but all 32 SGD runs still at rank 2 (their last escape comes later than GD\'s)'),
        'saddle-degenerate-L4-random': (
            '(nightly) 20/32 inits hold (Wilson [0.45, 0.77]): Gaussian seeds 0-4, 6, 8, 10, 11, 14 end at rank 3 '
            'in all 33 runs (the s = 1 mode has not escaped by T = 103.8); balanced seed 13 and Gaussian seed 5 have '
            'GD at rank 4 but all 32 SGD runs at rank 3 (SGD\'s last escape later than GD\'s); the repeated s = 2 '
            'splits in every run, as predicted from random inits'),
    },
}
