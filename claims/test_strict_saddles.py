"""Claim family: sampled DLN saddle points are certified as the theory predicts (protocol section 2).

Samples come from SGLD on the residual blocks of the normal form (fixed zero blocks, or free chains
annealed and polished onto E(Z) = 0). Every sample is certified by the Hessian (dense and Lanczos)
and compared with the structural oracle (`dlncheck.saddles.oracle`: Baldi & Hornik 1989; Kawaguchi,
NeurIPS 2016; Achour, Malgouyres & Gerchinovitz, JMLR 25, 2024). Each case asserts:
  1. criticality: E(Z) <= E_TOL and ||grad L|| <= sqrt(2 E_TOL) (exact identity ||grad||^2 = 2E when mu = 0)
     + the dtype's rounding of the weights (theory.sampling.rounding_gradient_bound; ~0 in float64);
  2. certified kind == the table's predicted kind (free chains: == the oracle's kind, sample by sample);
  3. |lambda_min(Lanczos) - lambda_min(dense)| <= tau_round = 10 sqrt(n) eps ||H||_2.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from claims import expectations
from dlncheck.config.experiment import Teacher
from dlncheck.report import plots
from dlncheck.saddles import (
    NormalForm,
    aligned_distances,
    count_distinct,
    rank_signature,
    sample,
    survey,
)
from dlncheck.suite.family import Family
from dlncheck.theory import sampling as th

FAMILY = Family(
    "strict_saddles",
    question="are the saddles strict (a negative Hessian eigenvalue)?",
    group="saddles",
    if_contradicted="assumption-fails",
)
pytestmark = FAMILY.mark


@dataclasses.dataclass(frozen=True)
class Case:
    """A strict-saddle case: depth, rank, learned set, fixed zero blocks and the predicted kind."""

    L: int
    r: int
    top: bool  # learned set S = top-r, else S = {0..r-2, r} (swaps the r-th for the (r+1)-th)
    zeros: tuple | None  # fixed zero residual blocks (1-based); None = free SGLD
    kind: str  # predicted kind; "oracle" = read per sample from the structure
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

QUICK = [
    Case(2, 1, True, (1, 2), "strict", DEPTH2),
    Case(2, 1, False, (1, 2), "strict", SWAP),
    Case(3, 1, True, (1, 2), "strict", TWO),
    Case(3, 1, True, (1, 3), "strict", TWO),
    Case(3, 1, True, (1, 2, 3), "non-strict", THREE),
    Case(3, 1, False, (1, 2, 3), "strict", SWAP),
    Case(2, 1, True, None, "oracle", FREE),
    Case(3, 1, True, None, "oracle", FREE),
]
NIGHTLY = [
    Case(3, 1, True, (2, 3), "strict", TWO),
    Case(3, 2, True, (1, 3), "strict", TWO),
    Case(3, 2, True, (1, 2, 3), "non-strict", THREE),
    Case(2, 2, True, (1, 2), "strict", DEPTH2),
    Case(3, 1, True, (1, 3), "strict", TWO, width=8, chains=16),
    Case(3, 1, True, (1, 2, 3), "non-strict", THREE, width=8, chains=16),
    Case(4, 1, True, (1, 4), "strict", TWO),
    Case(4, 1, True, (2, 3), "strict", TWO),
    Case(4, 1, True, (1, 2, 4), "non-strict", THREE),
    Case(4, 1, True, (1, 2, 3, 4), "non-strict", THREE),
    Case(4, 2, True, (1, 3, 4), "non-strict", THREE),
    Case(4, 1, False, (1, 2, 3), "strict", SWAP),
    Case(4, 1, True, None, "oracle", FREE),
    Case(3, 2, True, None, "oracle", FREE, width=8, chains=16),
]


E_TOL = 1e-12  # "critical": constraint energy below this (free chains: the low-energy ones)
SINGULAR_VALUES = (3.0, 2.0, 1.5, 1.0)


def draw(case: Case, nf: NormalForm):
    if case.zeros is None:  # annealed SGLD, then noise-free polish onto E = 0
        return sample(
            nf,
            case.chains,
            1000,
            step_size=0.1,
            beta=10.0,
            beta_final=1e5,
            norm_strength=1.0,
            polish=2000 * (case.L - 1),
            seed=case.L,
            record_every=50,
        )
    return sample(
        nf,
        case.chains,
        200,
        step_size=0.05,
        beta=100.0,
        norm_strength=1.0,
        zero_blocks=case.zeros,
        seed=case.L,
        record_every=20,
    )


def plot(case: Case, samples, table: pd.DataFrame, D: np.ndarray):
    fig, ax = plots.figure(
        2,
        2,
        size=(12.6, 8),
        margins={"right": 1.8},  # room for the top-right legend
        gridspec_kw={"hspace": 0.55, "wspace": 0.4, "top": 0.9},
    )
    _trace_panel(ax[0, 0], samples.trace)
    _lambda_panel(ax[0, 1], table, case)
    x = table.chain.values
    bottom = np.zeros(len(table))
    for col, color in (("n_neg", "tab:red"), ("n_zero", "tab:gray"), ("n_pos", "tab:blue")):
        vals = table[col].astype(float).values
        ax[1, 0].bar(x, vals, bottom=bottom, color=color, label=col.replace("n_", "# "))
        bottom += vals
    ax[1, 0].set(xlabel="sample (chain)", ylabel="eigenvalue count", title="Hessian inertia (dense)")
    ax[1, 0].legend()
    im = ax[1, 1].imshow(D, cmap="viridis", vmin=0, vmax=float(np.max(D)) if np.max(D) > 0 else 1.0)
    fig.colorbar(im, ax=ax[1, 1], label="gauge-aligned relative distance")
    ax[1, 1].set(xlabel="sample", ylabel="sample", title="diversity modulo orthogonal gauge")
    ax[1, 1].grid(False)
    fig.suptitle(f"{case.id}: L={case.L}, S={case.S}, widths={nf_widths(case)}", fontsize=11)
    return fig


def _trace_panel(ax, trace: pd.DataFrame):
    """Constraint energy per chain where it is ever positive (free chains); with fixed zero blocks
    E(Z) is identically 0, so show what the chains do instead: the residual blocks' norms."""
    if (trace.energy > 0).any():
        for c, tr in trace.groupby("chain"):
            positive = tr.energy > 0
            ax.semilogy(tr.step[positive], tr.energy[positive], lw=0.8, alpha=0.7, label="chains" if c == 0 else None)
        ax.axhline(E_TOL, color="tab:red", ls="--", label=rf"$E_{{\rm tol}} = {E_TOL:g}$")
        ax.set(xlabel="SGLD step", ylabel=r"constraint energy $E(Z)$ (zeros not drawn)", title="energy traces")
    elif not (trace[[c for c in trace.columns if c.startswith("znorm_")]] > 0).any().any():
        ax.text(
            0.5,
            0.5,
            "every residual block is fixed at zero:\neach chain sits on the critical point itself\n"
            r"($E(Z) = 0$ and $\|Z_l\|_F = 0$ at every step)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_axis_off()
        return
    else:
        cols = [c for c in trace.columns if c.startswith("znorm_")]
        for col in cols:
            per_step = trace.groupby("step")[col]
            mean, lo, hi = per_step.mean(), per_step.min(), per_step.max()
            line = ax.plot(mean.index, mean.values, label=rf"$\|Z_{{{col.split('_')[1]}}}\|_F$")[0]
            ax.fill_between(mean.index, lo.values, hi.values, color=line.get_color(), alpha=0.2, lw=0)
        ax.set(
            xlabel="SGLD step",
            ylabel=r"residual block norm $\|Z_l\|_F$ (chain mean, min-max)",
            title=r"$E(Z) \equiv 0$ here (zero blocks): residual norms",
        )
    ax.legend(fontsize=7)


def _lambda_panel(ax, table: pd.DataFrame, case: Case):
    """|lambda_min| on a log axis, the sign as colour: negative (a descent direction), inside the
    zero band +-tau, positive; the band edge tau drawn per sample."""
    x = table.chain.values
    floor = 1e-3 * float(table.tau.min())  # |lambda| below this (e.g. exactly 0) is drawn at the floor
    for col, marker, name in (("lambda_min_dense", "o", "dense"), ("lambda_min_lanczos", "x", "Lanczos (HVP)")):
        lam, tau = table[col].to_numpy(), table.tau.to_numpy()
        for mask, color, sign in (
            (lam < -tau, "tab:red", "< 0"),
            (np.abs(lam) <= tau, "tab:gray", r"$\approx 0$"),
            (lam > tau, "tab:blue", "> 0"),
        ):
            if mask.any():
                ax.scatter(
                    x[mask],
                    np.maximum(np.abs(lam[mask]), floor),
                    marker=marker,
                    color=color,
                    s=40,
                    label=f"{name}, {sign}",
                    facecolors=color if marker == "x" else "none",
                )
    ax.step(x, table.tau, where="mid", color="0.3", ls="--", lw=1, label=r"zero band $\tau$")
    ax.set_yscale("log")
    ax.set(
        xlabel="sample (chain)",
        ylabel=r"$|\lambda_{\min}(H)|$ (loss units; $< 10^{-3}\tau$ drawn there)",
        title=f"smallest Hessian eigenvalue (colour = sign)\npredicted: {case.kind}",
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _chains_moved(final: pd.DataFrame) -> int:
    """Chains whose residual blocks end away from zero (a chain with every block at zero sits on the
    normal form's base point, the same deterministic point as every other such chain)."""
    norms = final[[c for c in final.columns if c.startswith("znorm_")]]
    return int(norms.gt(0).any(axis=1).sum())


def nf_widths(case: Case) -> list[int]:
    return [4] + [case.width] * (case.L - 1) + [4]


@pytest.mark.parametrize("case", expectations.table_cases(QUICK, NIGHTLY))
def test_sampled_saddles_certify_as_predicted(case: Case, dtype, device, claim):
    """--dtype sets the SGLD precision and --device where it runs; the Hessian certification is
    float64 on the CPU by design."""
    teacher = Teacher(4, 4, SINGULAR_VALUES, seed=0)
    nf = NormalForm(teacher.M, case.S, nf_widths(case), dtype=getattr(torch, dtype), device=device)
    samples = draw(case, nf)
    table = survey(nf, samples.Z)
    low = table[table.energy <= E_TOL]
    D = aligned_distances(samples.Z)
    sigs = rank_signature(nf, samples.Z)
    claim.figure(
        plot(case, samples, table, D),
        "saddles",
        caption="energy traces, lambda_min with zero band, inertia, gauge-aligned distances",
    )
    claim.table(table, "samples", caption="per-sample certificate, oracle and rank signature")
    claim.table(samples.trace, "energy_trace", caption="SGLD diagnostics per chain and recorded step")
    claim.table(pd.DataFrame(D, columns=[f"chain_{c}" for c in range(len(D))]), "aligned_distances")

    theta_norm = torch.sqrt(sum((w.double() ** 2).sum((-2, -1)) for w in nf.weights(samples.Z))).cpu().numpy()
    eps = torch.finfo(getattr(torch, dtype)).eps
    crit = th.criticality_check(low.grad_norm, low.h_norm, theta_norm[low.index], eps, E_TOL)
    critical = crit["holds"]
    points = count_distinct(sigs, D)  # chains at the same point (modulo gauge) are one piece of evidence
    moved = _chains_moved(samples.final)
    positive = int(samples.trace.groupby("chain").energy.max().gt(0).sum())
    expected = low.oracle if case.kind == "oracle" else case.kind
    agree = low.kind == expected
    lanczos_ok = (low.lambda_min_lanczos - low.lambda_min_dense).abs() <= low.tau_round
    drawn, n_low = len(table), len(low)
    enough = n_low == drawn if case.zeros is not None else n_low >= 1
    holds = bool(enough and critical and agree.all() and lanczos_ok.all())
    kinds = low.kind.value_counts().to_dict()
    claim.verdict(
        prediction=f"{case.kind if case.kind != 'oracle' else 'oracle kind per sample'}: {case.reason}",
        observed=(
            f"{points} distinct point(s) (gauge classes) from {drawn} chains"
            + (" (every residual block fixed at zero: one deterministic point)" if moved == 0 else "")
            + f"; {moved} chain(s) left the base point, {positive} had E > 0 at some step; "
            f"{n_low}/{drawn} samples with E <= {E_TOL:g}; kinds {kinds}; "
            f"{int(agree.sum())}/{n_low} certified as predicted; Lanczos within tau_round on "
            f"{int(lanczos_ok.sum())}/{n_low}; max E {table.energy.max():.2e}; "
            f"max ||grad|| / mdd {crit['excess']:.2g}"
        ),
        holds=holds,
        fixed_points=points,
        chains_moved=moved,
        chains_positive_energy=positive,
        mdd_grad_norm=float(np.max(crit["mdd"])) if n_low else None,
        drawn=drawn,
        low_energy=n_low,
        as_predicted=int(agree.sum()),
        max_energy=float(table.energy.max()),
        max_grad_norm=float(low.grad_norm.max()) if n_low else None,
        lambda_min_median=float(low.lambda_min.median()) if n_low else None,
        max_lanczos_dense_gap=float((low.lambda_min_lanczos - low.lambda_min_dense).abs().max()) if n_low else None,
        tau_max=float(low.tau.max()) if n_low else None,
        distinct=points,
        kinds=kinds,
        sgld_dtype=dtype,
        device=device,
        certify_device="cpu",
    )
    assert holds, (
        f"{case.id}: {n_low}/{drawn} low-energy samples (need {'all' if case.zeros else '>= 1'}); "
        f"critical={critical}; certified kinds {low.kind.tolist()} vs expected "
        f"{list(expected) if case.kind == 'oracle' else case.kind}; lambda_min "
        f"{low.lambda_min.round(6).tolist()} "
        f"with tau {low.tau.max() if n_low else float('nan'):.2e}; Lanczos-dense gaps "
        f"{(low.lambda_min_lanczos - low.lambda_min_dense).abs().max() if n_low else float('nan'):.2e} "
        f"vs tau_round. See {claim.dir}"
    )
