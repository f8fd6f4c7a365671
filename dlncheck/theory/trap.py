"""The GD trap: a balanced init whose determinant sign disagrees with the teacher's.

Setting: square teacher M (d x d, full rank, simple smallest value s_d), hidden widths >= d,
exactly balanced init W_{l+1}^T W_{l+1} = W_l W_l^T (``Init("balanced")``: W_0 = c O with O
orthogonal, c = scale^L).

1. **Balance is conserved** by gradient flow (Arora, Cohen & Hazan 2018, "On the optimization
   of deep networks: implicit acceleration by overparameterization", Thm 1), and then the
   end-to-end map obeys  dW/dt = -sum_{j=1}^L (W W^T)^{(j-1)/L} G (W^T W)^{(L-j)/L},  G = W - M.
2. **det W keeps its sign** (any L >= 2). With W = U S V^T invertible,
   d/dt ln|det W| = tr(W^{-1} dW/dt) = -L tr(S^{1-2/L} U^T G V), bounded while W is bounded,
   so |det W(t)| >= |det W_0| e^{-C t} > 0 for every finite t (the same statement as the
   singular-value flow dsigma_i/dt = -L sigma_i^{2-2/L} u_i^T G v_i of Arora, Cohen, Golowich &
   Hu 2019, "A convergence analysis of gradient descent for deep linear neural networks", whose
   deficiency margin is exactly a bound away from this sign barrier).
3. **Trap** if sign(det W_0) sign(det M) < 0: every W the flow visits has det W det M < 0, and by
   Eckart-Young-Mirsky  min{0.5 ||W - M||^2 : det W det M <= 0} = 0.5 s_d^2  (attained at M minus
   its smallest mode). So the loss stays above P = 0.5 s_d^2 for all time (:func:`trap_plateau`).
   The flow converges to a critical point (analytic loss, Lojasiewicz) in the closure of the
   wrong-sign region; the critical values there are 0.5 sum_{alpha unlearned} s_alpha^2, and the
   only local minimum of the loss on that closure is M - s_d u_d v_d^T (in any 2x2 block (a, d)
   rotating mass from mode a into mode d lowers the loss), so a generic init ends on the plateau
   P with the *smallest* mode unlearned. When the run gets there is read off the same flow,
   integrated from the actual W_0 (:func:`flow_entry_time`, :func:`settle_time`).
   Floating point: the trapped mode decays (L = 2: at rate 2 s_d) to the roundoff floor eps s_1,
   where its sign is noise, and regrows like a mode escaping from u0 = eps s_1; hence GD's band
   is [P/2, midpoint to the next critical value] up to :func:`float_trap_end` (:func:`plateau_band`;
   at L >= 3 the regrowth is polynomially slow). Discrete GD also breaks balance by O(lr^2) per
   step; measured GD escape of saddle-fullrank-L2 seed 0: t ~ 65 vs the bound 47.4.
4. **What it does not say**: a non-square teacher has no determinant and the full-rank
   d_out x d_in matrices form a connected set, so no topological trap is predicted (nothing is
   claimed). An unbalanced init (NTK/LeCun) is not trapped, but any *continuous* path from W_0 to
   M with det W_0 det M < 0 must cross det W = 0 (intermediate values): every converging run
   passes through a singular W (:func:`must_cross_singular`, :func:`first_sign_flip`); how far
   below a rank floor a sampled run dips is luck (:func:`crossing_dip_bound`,
   :func:`dip_below_floor_probability`).
5. **SGD escape** (L = 2). At the plateau the unlearned mode is a strict saddle: in a hidden
   direction with layer amplitudes (x1, x2), loss 0.5 (s_d - x1 x2)^2 has curvature -s_d along
   x1 = x2. Balance keeps the run on x1 = -x2, which decays. Mini-batch noise breaks balance
   through its second moment: SGD's mean drift away from GD is O(T) per unit time with the
   temperature T = lr (n - B) / (B (n - 1)) (the batch-covariance factor of sampling without
   replacement; Smith, Dherin, Barrett & De 2021, "On the origin of implicit regularization in
   stochastic gradient descent"), so the unstable amplitude starts at ~ kappa T x0 (x0 = scale,
   mode strength u_seed = c (kappa T)^2) and grows as e^{s_d t}: t_esc = escape_time(s_d, u_seed, 2)
   and the shift between two settings is  Delta t_esc = -(1/s_d) ln(T_2 / T_1)  (heuristic,
   exploratory; kappa = O(1) unknown). At L >= 3 the saddle is degenerate (no negative
   curvature), escape from a small seed takes ~ 1/((L-2) s u^{(L-2)/L}): polynomially long,
   so no SGD escape is predicted within a preset's run (exploratory).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.integrate import quad, solve_ivp

from dlncheck.theory import ESCAPE_FRACTION, escape_time
from dlncheck.theory.gradient_noise import minibatch_factor

KAPPA_FLOOR = 1e-3  # smallest seed constant kappa the SGD run length is made to cover (exploratory prior)
SETTLE = 10.0  # e-folds of the slowest mode's linear rate after its escape (as presets._saddle_steps)


def _square(W: torch.Tensor, name: str) -> None:
    if W.shape[-1] != W.shape[-2]:
        raise ValueError(
            f"{name} has shape {tuple(W.shape[-2:])}: the determinant-sign argument needs a "
            "square end-to-end map; use a square teacher (d_out == d_in)"
        )


def det_sign(W: torch.Tensor) -> torch.Tensor:
    """sign(det W) (batched; 0 for a numerically singular W), via the LU-based slogdet."""
    _square(W, "W")
    return torch.linalg.slogdet(W.double())[0]


def trap_sign(W0: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """sign(det W_0) sign(det M): -1 predicts the trap (item 3 of the module docstring)."""
    _square(M, "M")
    return det_sign(W0) * det_sign(M)


def predicts_trap(W0: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """True where balanced gradient flow from W_0 can never reach M (det signs disagree)."""
    return trap_sign(W0, M) < 0


def trapped_init(weights: list[torch.Tensor], M: torch.Tensor) -> bool:
    """True where this theory's premises hold and it predicts the trap for one init ``weights``
    (layers W_1..W_L, first layer first): a square teacher of full rank with a simple smallest
    singular value (both above the numerical-rank floor d eps s_1), an init balanced up to roundoff, and det(W_0) det(M) < 0. Balanced up to
    roundoff: every ||W_{l+1}^T W_{l+1} - W_l W_l^T||_F <= 2 d eps (||W_l||_F^2 + ||W_{l+1}||_F^2),
    the floating-point error bound of the two Gram products (Higham 2002, eq. 3.13: |fl(AB) - AB|
    <= gamma_d |A||B|, gamma_d ~ d eps). Then GD (the discretised flow) is predicted never to learn
    the smallest mode (item 3), and nothing is predicted for SGD at L >= 3 (item 5)."""
    if M.shape[-1] != M.shape[-2]:
        return False
    s = torch.linalg.svdvals(M.double())
    floor = len(s) * torch.finfo(torch.float64).eps * s[0]  # numerical rank: numpy.linalg.matrix_rank's floor
    if not (s[-1] > floor and (len(s) < 2 or s[-2] - s[-1] > floor)):
        return False
    eps = torch.finfo(weights[0].dtype).eps
    for lower, upper in zip(weights[:-1], weights[1:]):
        gap = torch.linalg.matrix_norm(upper.mT @ upper - lower @ lower.mT)
        bound = 2 * lower.shape[0] * eps * (lower.norm() ** 2 + upper.norm() ** 2)
        if gap > bound:
            return False
    W0 = weights[0]
    for w in weights[1:]:
        W0 = w @ W0
    return bool(predicts_trap(W0, M))


def must_cross_singular(W0: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """True where every continuous path W_0 -> M passes through a singular W (any init, any L):
    det is continuous and changes sign. For the rank-pattern claim: a converging run's
    end-to-end rank must dip to d - 1 somewhere (how deep the sampled dip is: :func:`crossing_dip_bound`)."""
    return predicts_trap(W0, M)


def crossing_dip_bound(t_grid, t_cross: float, speed: float) -> float:
    """Upper bound on min_k sigma_min(W(t_k)) over a sampled grid when W(t*) is singular:
    sigma_min is 1-Lipschitz in W (Weyl), so sigma_min(W(t_k)) <= |t_k - t*| max ||dW/dt||_2.
    speed: max ||dW/dt||_2 near t*; returns min_k |t_k - t*| * speed."""
    t = np.asarray(t_grid, dtype=np.float64)
    return float(np.min(np.abs(t - t_cross)) * speed)


def trap_plateau(s) -> float:
    """P = 0.5 s_min^2: the infimum of 0.5 ||W - M||^2 over det W det M <= 0 (Eckart-Young-Mirsky)."""
    s = np.asarray(s, dtype=np.float64)
    return 0.5 * float(s[s > 0].min()) ** 2


def plateau_band(s) -> tuple[float, float]:
    """GD's band on the trap plateau: [P (1 - f)^2, midpoint to the next critical value].

    Upper edge: the trapped flow's critical values are 0.5 sum_{unlearned} s^2; below the midpoint
    between P and 0.5 (s_{d-1}^2 + s_d^2) the run sits at the predicted one. Lower edge: exact
    arithmetic keeps loss >= P (Eckart-Young-Mirsky), but in floating point the decaying trapped
    mode reaches the roundoff floor (:func:`resolvable_floor`), where its sign is noise, and regrows
    like a mode escaping from u0 = floor; up to :func:`float_trap_end` its strength stays below
    f s_d (f = ESCAPE_FRACTION), i.e. loss >= 0.5 (s_d - f s_d)^2 = P (1 - f)^2 = P / 2: the
    same threshold that defines an SGD escape (:func:`escape_times`)."""
    s = np.sort(np.asarray(s, dtype=np.float64)[np.asarray(s) > 0])[::-1]
    low = 0.5 * s[-1] ** 2
    nxt = 0.5 * (s[-2] ** 2 + s[-1] ** 2) if len(s) > 1 else 2 * low
    return float(low * (1 - ESCAPE_FRACTION) ** 2), float(0.5 * (low + nxt))


def resolvable_floor(s, dtype_eps: float) -> float:
    """Smallest singular value of W resolvable next to ||W||_2 ~ s_1: eps s_1 (backward-stable
    products and SVD perturb W by O(eps ||W||_2); Golub & Van Loan 2013, Sec. 8.6)."""
    return dtype_eps * float(np.max(np.asarray(s, dtype=np.float64)))


def float_trap_end(s, t_settle: float, depth: int, dtype_eps: float) -> float:
    """Latest time floating-point GD is predicted to stay on the plateau: t_settle plus the
    regrowth of the trapped mode from the roundoff floor, escape_time(s_d, eps s_1, L) (roundoff
    assumed to reach the trapped direction at the floor no earlier than the settle time, when
    ||W|| ~ s_1; heuristic lower bound: the decay to the floor takes extra time). L = 2: ~ ln(f s_d /
    (eps s_1)) / (2 s_d); L >= 3: polynomially long (degenerate saddle)."""
    s = np.asarray(s, dtype=np.float64)
    s_min = float(s[s > 0].min())
    return t_settle + float(escape_time([s_min], [resolvable_floor(s, dtype_eps)], depth)[0])


def loss_roundoff(M: torch.Tensor, dtype_eps: float) -> float:
    """Floating error of 0.5 ||W - M||_F^2 + offset near M: d_out d_in eps ||M||_F^2 (sum of
    d_out d_in terms of size <= ||M||_F^2, each rounded at relative eps; Higham 2002, Sec. 3.1)."""
    return float(M.shape[-2] * M.shape[-1] * dtype_eps * M.pow(2).sum())


def balanced_flow_rhs(W: np.ndarray, M: np.ndarray, depth: int) -> np.ndarray:
    """dW/dt = -sum_{j=1}^L (W W^T)^{(j-1)/L} G (W^T W)^{(L-j)/L}, G = W - M: the end-to-end gradient
    flow of a balanced DLN (Arora, Cohen & Hazan 2018, Thm 1; (.)^0 = I). With W = U S V^T the
    j-th term is U S^{2(j-1)/L} U^T G V S^{2(L-j)/L} V^T (zero singular values give 0^p = 0, p > 0)."""
    U, S, Vh = np.linalg.svd(W, full_matrices=False)
    G = W - M
    GV = G @ Vh.T  # G V
    UG = U.T @ G  # U^T G
    UGV = U.T @ GV  # U^T G V
    total = G @ (Vh.T * S ** (2 * (depth - 1) / depth)) @ Vh  # j = 1
    for j in range(2, depth):
        a, b = 2 * (j - 1) / depth, 2 * (depth - j) / depth
        total += U @ ((S**a)[:, None] * UGV * (S**b)[None, :]) @ Vh
    total += (U * S ** (2 * (depth - 1) / depth)) @ UG  # j = L
    return -total


def flow_entry_time(W0: torch.Tensor, M: torch.Tensor, depth: int, level: float, t_max: float) -> float:
    """First time the balanced end-to-end flow from W_0 (:func:`balanced_flow_rhs`, LSODA, rtol 1e-8)
    has loss 0.5 ||W - M||^2 <= level; inf if not before t_max. This is theory's gradient-flow
    prediction from the actual init (exact for a balanced init, any L >= 2)."""

    target = M.double().cpu().numpy()

    def rhs(_, y):
        return balanced_flow_rhs(y.reshape(target.shape), target, depth).ravel()

    def reached(_, y):
        return 0.5 * float(((y.reshape(target.shape) - target) ** 2).sum()) - level

    reached.terminal, reached.direction = True, -1  # type: ignore[attr-defined]  # solve_ivp reads them
    sol = solve_ivp(
        rhs, (0.0, t_max), W0.double().cpu().numpy().ravel(), method="LSODA", rtol=1e-8, atol=1e-14, events=reached
    )
    assert sol.t_events is not None  # one array per event function
    hits = sol.t_events[0]
    return float(hits[0]) if len(hits) else math.inf


def settle_time(t_entry: float, s, depth: int, learned: int, lr_curvature: float) -> float:
    """When GD is predicted to have settled: the flow's entry time, dilated by Euler's lag
    (a step grows a linear mode by 1 + lr lambda instead of e^{lr lambda}: relative time lag
    <= lr lambda_max / 2, ``lr_curvature`` = lr lambda_max), plus SETTLE e-folds of the slowest
    learned mode's linear rate L s^{2-2/L}."""
    s_learned = float(np.sort(np.asarray(s, dtype=np.float64))[::-1][learned - 1])
    return t_entry * (1 + lr_curvature / 2) + SETTLE / (depth * s_learned ** (2 - 2 / depth))


def settling_efolds(depth: int) -> float:
    """The settling time of a mode in units of its linear time 1 / (L s^{2-2/L}): the balanced mode flow
    du/dt = L u^{2-2/L} (s - u) takes its gap s - u from the escape, (1 - f) s (f = ESCAPE_FRACTION), to
    (1 - f) s e^{-SETTLE} in

        I_L / (L s^{2-2/L}),   I_L = int_{w_0}^{w_0 + SETTLE} (1 - e^{-w})^{-(2-2/L)} dw,   w_0 = -ln(1 - f)

    (substituting u = s (1 - e^{-w}); independent of s). Linearising at u = s gives SETTLE instead: the
    rate L u^{2-2/L} is below L s^{2-2/L} on the way, so that count is short, by 1.12x at L = 2
    (closed form I_2 = ln((e^{w_0 + SETTLE} - 1) / (e^{w_0} - 1))) and more at larger L."""
    if not depth >= 2:
        raise ValueError(f"depth={depth!r} is invalid: use depth >= 2")
    w0 = -math.log(1 - ESCAPE_FRACTION)
    value, _ = quad(lambda w: (1 - math.exp(-w)) ** -(2 - 2 / depth), w0, w0 + SETTLE, epsabs=0, epsrel=1e-12)
    return float(value)


def settling_margin(s_min: float, depth: int) -> float:
    """Time a run needs after its own last escape to settle: the slowest mode's gap falls by SETTLE
    e-folds, exactly along the balanced mode flow (:func:`settling_efolds`: I_L / (L s^{2-2/L}); Saxe et
    al. 2014's flow). The run-length rule of the init ensembles
    (dlncheck.suite.init_ensembles.settled_ensemble): every run of every init the det-sign rule
    (:func:`predicts_trap`) does not trap is trained to at least its own last escape plus this margin; a
    trapped init's smallest mode never escapes under GD, so it adds nothing, and the length is capped
    at init_ensembles.PILOT_CAP aligned preset lengths."""
    if not (s_min > 0 and depth >= 2):
        raise ValueError(f"s_min={s_min!r}, depth={depth!r} are invalid: use s_min > 0 and depth >= 2")
    return settling_efolds(depth) / (depth * s_min ** (2 - 2 / depth))


def sgd_temperature(lr: float, n: int, batch: int) -> float:
    """T = lr (n - B) / (B (n - 1)): lr times the variance factor of a batch mean drawn without
    replacement from n samples (Cochran 1977, Sampling Techniques, Thm 2.2)."""
    return lr * minibatch_factor(n, batch)


def sgd_escape_time(s_min: float, c: float, temperature: float, kappa: float = 1.0) -> float:
    """Heuristic L = 2 SGD escape time from the plateau (docstring item 5, exploratory):
    escape_time(s_min, c (kappa T)^2, 2), measured from t = 0."""
    return float(escape_time([s_min], [c * (kappa * temperature) ** 2], 2)[0])


def escape_shift(s_min: float, temperature_1: float, temperature_2: float) -> float:
    """Predicted change of the L = 2 SGD escape time from T_1 to T_2: -(1/s_min) ln(T_2 / T_1)."""
    return -math.log(temperature_2 / temperature_1) / s_min


def converged_loss(s, depth: int) -> float:
    """Loss bound once every mode has settled (free init): a mode's gap s - u falls monotonically along
    its flow, from (1 - f) s at its escape (u = f s, f = ESCAPE_FRACTION) to (1 - f) s e^{-SETTLE} within
    :func:`settling_margin` after it; summed: 0.5 sum_alpha s_alpha^2 (1 - f)^2 e^{-2 SETTLE}."""
    s = np.asarray(s, dtype=np.float64)
    return 0.5 * float((s**2).sum()) * (1 - ESCAPE_FRACTION) ** 2 * math.exp(-2 * SETTLE)


def escape_times(loss: torch.Tensor, times: torch.Tensor, level: float) -> torch.Tensor:
    """First time each run's loss (R, T) is below ``level`` (inf if never): for the trapped
    plateau P, level P/2 is where the unlearned mode's loss 0.5 (s_d - u)^2 has halved
    (u = f s_d, f = ESCAPE_FRACTION, the convention of :func:`dlncheck.theory.escape_time`)."""
    below = loss < level
    first = below.double().argmax(-1)
    t = times.to(loss.device, torch.float64)[first]
    return torch.where(below.any(-1), t, torch.full_like(t, math.inf))


def dip_below_floor_probability(floor: float, step_change: float) -> float:
    """Chance that a run sampled every step shows sigma_min(W) < floor while crossing det W = 0:
    along one step sigma_min(W_k + tau dW) ~ |tau - tau*| |u^T dW v| <= |tau - tau*| ||dW||_2 with the
    crossing phase tau* uniform in [0, 1], so the nearest step is below the floor with probability
    >= min(1, 2 floor / ||dW||_2) (``step_change`` = ||W_{k+1} - W_k||_2 at the crossing): whether a
    run's rank dips below a floor is sampling luck unless floor ~ ||dW||_2."""
    return min(1.0, 2 * floor / step_change)


def first_sign_flip(signs: torch.Tensor) -> torch.Tensor:
    """Index of the first checkpoint whose det sign differs from the first one, per run (R, K) ->
    (R,), -1 where the sign never changes: a converging run with :func:`must_cross_singular`
    must show one (on an every-step grid: between two consecutive steps)."""
    changed = signs != signs[..., :1]
    return torch.where(changed.any(-1), changed.double().argmax(-1), torch.full(changed.shape[:-1], -1))
