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
def stagewise_prediction(regime: str, teacher: str) -> Prediction:
    """The stagewise row (regime x teacher) shared by unit-step growth and eps sensitivity;
    ``kind`` is the predicted growth: "unit" | "multiplicity" | "none" | "weyl"."""
    if regime == "saddle" and teacher in ("lowrank", "fullrank"):
        return Prediction("rank 0 -> 1 -> ... -> r in unit steps, monotone, for GD and every SGD run",
                          "small init: distinct s_a escape one at a time, larger s first (Saxe 2014; Jacot 2021)",
                          kind="unit")
    if regime == "saddle":
        return Prediction("rank jumps by the multiplicity of each repeated s (levels 0, m1, m1+m2, ...)",
                          "equal singular values escape together: no preferred order inside a degenerate block",
                          kind="multiplicity")
    if regime == "ntk":
        return Prediction("no stagewise growth: rank >= r from the first checkpoint",
                          "large init: W(0) is already full rank at the floor and moves lazily", kind="none")
    return Prediction("only Weyl: final rank >= #{a : s_a - ||W-M||_F > eps max(sigma_1, s_1)}",
                      "intermediate init: no theory of the growth pattern", exploratory=True, kind="weyl")


def rank_levels(pred: Prediction, s: torch.Tensor) -> list[int]:
    """The rank levels a staircase must visit: 0..r (unit) or the cumulative multiplicities."""
    return stagewise.multiplicity_levels(s) if pred.kind == "multiplicity" else list(range(int((s > 0).sum()) + 1))


# ------------------------------------------------------------- tolerances named in rows
DWELL_RTOL = 0.05            # "on plateau k": loss within 5% of P_k


# ------------------------------------------------------------------- prediction rows
PREDICTIONS: dict[str, dict[str, Prediction]] = {
    "balance": {
        "saddle": Prediction(
            "every random small init: GD's ||D_l(T) - D_l(0)|| <= lr (L(0) - L(T)) / (1 - h/2), and SGD's mean "
            "extra drift of D_l equals c_B lr^2 sum_t C_l(W_t^GD) within h ||prediction|| + the runs' 95% "
            "sampling error",
            "gradient flow conserves D_l (Arora, Cohen & Hazan 2018); GD's lr^2 drift is bounded by the descent "
            "lemma; minibatch noise adds the expected drift c_B lr^2 C_l (theory.sgd, item 1), which dominates "
            "SGD's final residual from a small init"),
        "aligned": Prediction(
            "control (D_l(0) = 0): the same two checks; GD stays exactly balanced (identity, tests/test_balance.py)",
            "aligned balanced init: GD's per-mode map keeps the layers equal, so all of SGD's imbalance is the "
            "predicted noise drift"),
        "ntk": Prediction(
            "every init: GD's drift within the descent-lemma bound; SGD's extra drift equals the first-order "
            "prediction within its tolerance",
            "the drift identity and its first-order expectation hold in any regime with h = lr lambda_max < 2; "
            "at a large init D_l(0) is O(1) and persists (lazy weights move little)"),
        "intermediate": Prediction(
            "every init: GD's drift within the descent-lemma bound; SGD's extra drift equals the first-order "
            "prediction within its tolerance",
            "as in the other regimes: the prediction is first order in lr c_B and needs no regime-specific "
            "assumption"),
    },
    "mode_decoupling": {
        "saddle": Prediction("every random small init aligns first: t_cross(a) <= t_diag(a) for every mode, "
                             "in GD and every SGD run of the init",
                             "small random init: during each plateau the layers align with the teacher's "
                             "singular vectors before the mode is learned (silent alignment, Atanasov, "
                             "Bordelon & Pehlevan, ICLR 2022; Saxe et al. 2014); the small-init limit "
                             "admits no exceptional init, so the prediction is every init"),
        "aligned": Prediction("control: cross modes stay below eps_rho, so t_cross(a) <= t_diag(a) in GD and "
                              "every SGD run",
                              "aligned balanced init: GD keeps the modes exactly decoupled (rho_a = 0); SGD's "
                              "noise creates cross coefficients that must stay small against the diagonal"),
        "ntk": Prediction("exploratory: every mode learned in every run of every init; the lazy isotropic-"
                          "kernel model's per-mode outcome (theory.modes.lazy_rho_at_diag) is reported "
                          "against GD's",
                          "large init: W(0) is O(1) in all directions and the residual decays uniformly, so "
                          "whether a row aligns before its diagonal is half-learned depends on W(0); no "
                          "margin for kernel anisotropy is derived", True),
        "intermediate": Prediction("exploratory: every mode learned in every run of every init; alignment "
                                   "order recorded",
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
            "every run's dwell on each intermediate plateau and its final movement within relative h = lr "
            "lambda_max of the gradient flow's (theory.tolerances.aligned_flow_rtol; dwell plus one loss-grid "
            "spacing; movement: theory.aligned_movement)",
            "aligned tiny init: modes escape one by one at Saxe's times (Saxe et al. 2014), weights grow "
            "from ~scale to ~s^{1/L}"),
        "ntk": Prediction(
            "every init, every run: no plateau (dwell on each intermediate plateau below the lazy bound "
            "ln((1+rtol)/(1-rtol)) / (2 k_min T)) and relative movement inside the kernel band "
            "[|e_0 - e_T| / sqrt(k_max), |e_0 + e_T| / sqrt(k_min)] / ||theta_0|| (theory.tolerances)",
            "wide LeCun init: the tangent kernel barely changes, the loss decays at its rates and the weights "
            "move by the kernel-weighted residual (Jacot et al. 2018; Lee et al. 2019)"),
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
        "saddle": Prediction("every random small init: every mode escapes, in order of decreasing s, in GD and "
                             "every SGD run (measured / escape_time(s, u0_eff) reported)",
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
    "balance": {
        'saddle-fullrank-L3': (
            "2 of 8 inits (balanced#2, balanced#3) miss the first-order SGD drift prediction on pair 1-2, where the "
            "extra drift is small (predicted 1.5e-3-2.7e-3, measured 1.1e-3-1.5e-3): error 1.8e-3 and 2.8e-3 vs "
            "tolerance 1.6e-3 and 2.4e-3 (x1.07-1.17); pair 2-3 and the other 6 inits agree"),
        'saddle-degenerate-L3': (
            "1 of 8 inits (gaussian#3) misses on pair 1-2: measured extra drift 5.2e-3 vs predicted 3.0e-3 (error "
            "2.9e-3, tolerance 2.6e-3, x1.11); this init leaves mode 4 unlearned by the end (see mode decoupling), "
            "so its path is not the converged one the prediction integrates"),
    },
    "theory_agreement": {
        'saddle-fullrank-L2': (
            "1 of 8 inits fails (7/8, CI 0.53-0.98): balanced#0 is the GD trap (det(W_0) det(M) < 0, "
            "claims/test_gd_trap.py): GD's mode 4 never escapes, its SGD runs do; every other init escapes in order "
            "with measured/predicted escape time 1.01-1.63"),
        'saddle-fullrank-L3': (
            "2 of 8 inits fail (6/8, CI 0.41-0.93): in balanced#0 and balanced#1 (the balanced inits with "
            "det(W_0) det(M) < 0; Gaussian ones with that sign escape) mode 4 (s=0.5) has not escaped by the "
            "end (2x the aligned preset's steps) in any run, GD included; where modes escape, "
            "measured/predicted is 0.94-2.91 (median 1.47-1.53 for modes 3-4)"),
        'saddle-degenerate-L3': (
            "3 of 8 inits fail (5/8, CI 0.31-0.86): mode 4 (s=1) has not escaped by the end in balanced#0 and "
            "gaussian#3 (all 5 runs, GD included) and in 4 of the 4 SGD runs of balanced#2 (its GD escapes); "
            "escaped modes keep the order, measured/predicted 0.98-2.28"),
    },
    "eps_sensitivity": {
        'saddle-degenerate-L2': (
            'no eps in 1e-7..1e-3 gives the multiplicity staircase for every run: SGD splits the repeated '
            'singular value over the long L=2 plateau in 4 of 8 runs (see unit-step growth)'),
    },
    "mode_decoupling": {
        'saddle-fullrank-L2': (
            "1 of 8 inits fails: balanced#0 is the GD trap (det(W_0) det(M) < 0, claims/test_gd_trap.py): GD never "
            "brings mode 4 (s=0.5) to half strength, while its 4 SGD runs escape and align first; the 7 other inits "
            "align first in every run (7/8, Wilson 95% CI 0.53-0.98)"),
        'saddle-lowrank-L3': (
            "5 of 8 inits fail (3/8 align first, CI 0.14-0.69): at L=3 with a0=0.05 per layer the escape is algebraic "
            "and alignment completes during the rise, not before it: rho_a at t_diag is 0.106-0.152 (threshold 0.1), "
            "t_cross 0.15-0.44 after t_diag (e.g. gaussian#0 mode 2: 12.81 vs 12.66), identically in GD and SGD"),
        'saddle-fullrank-L3': (
            "4 of 8 inits fail (4/8, CI 0.22-0.78): in balanced#0 and balanced#1, the two balanced inits with "
            "det(W_0) det(M) < 0, mode 4 (s=0.5) is not at half strength by the end in any of the 5 runs (GD "
            "included), and modes 2-3 of 4 inits reach half strength "
            "with rho_a 0.11-0.35 (gaussian#0 mode 2: t_cross 20.5 vs t_diag 19.3), identically in GD and SGD"),
        'saddle-degenerate-L3': (
            "3 of 8 inits fail (5/8, CI 0.31-0.86): mode 4 (s=1) is not at half strength by the end in balanced#0 "
            "and gaussian#3 (all 5 runs) and in 4 SGD runs of balanced#2; mode 1 of balanced#2 and gaussian#3 "
            "reaches half strength at rho_1 0.15-0.16 (t_cross 6.92 vs t_diag 6.65)"),
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
        'saddle-degenerate-L2': (
            'SGD noise over the long L=2 plateau (u0=1e-8) splits the repeated singular value: 4 of 8 SGD runs '
            'step 1->2->3 instead of jumping from 1 to 3; GD jumps by the multiplicity as predicted'),
        'ntk-fullrank-L3': (
            "one SGD run's W dips transiently to rank 3 (its smallest singular value passes below the floor 4e-4 "
            "on the way from the random init to M); GD and the other runs stay at rank 4"),
    },
}
