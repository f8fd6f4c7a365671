"""Every prediction of the protocol, one submodule per family; each docstring gives the source.

- :mod:`.modes`: plateaus, mode trajectories (Saxe et al. 2014), GD-vs-flow error, escape
  times and the one definition of an escape window;
- :mod:`.balance`: the final balance residual implied by the conserved D_l;
- :mod:`.tolerances`: tolerances of the GD-vs-SGD function-space claim;
- :mod:`.rmt`: random-matrix edges and floors that predict where the numerical rank is right;
- :mod:`.escape_lag`: SGD's first-order escape lag (reshuffled SGD's modified loss);
- :mod:`.path_offset`: SGD's first-order mean end-to-end map along GD's path at matched progress
  (the same modified loss) and its band;
- :mod:`.init_scale`: escape time against the init scale a0, and the a0 -> 0 limit of the
  window and alignment readings.
- :mod:`.assumptions`: what still holds beyond the analytic picture's assumptions (anisotropic
  inputs, a bottleneck, unbalanced inits): the drift identity, mode rates, learning order.
- :mod:`.split_premise`: whether an init is balanced enough for theory.sgd's balance-drift split
  (checked before the singular-value comparison; elsewhere the drift identity is asserted).

Everything is re-exported here, so ``from dlncheck import theory; theory.escape_time(...)``
keeps working.
"""

from __future__ import annotations

from dlncheck.theory.balance_drift import balanced_residual_prediction
from dlncheck.theory.escape_lag import escape_values, lag_checks, predicted_lags
from dlncheck.theory.init_scale import alignment_exponent, decoupled_exponent
from dlncheck.theory.mode_dynamics import (
    ESCAPE_FRACTION,
    ArrayLike,
    aligned_loss,
    aligned_movement,
    discrete_gd_modes,
    escape_halfwidth,
    escape_order,
    escape_time,
    escape_time_asymptotic,
    escape_windows,
    euler_error,
    mode_trajectory,
    plateau_losses,
    stage_plateaus,
)
from dlncheck.theory.rmt import (
    CEILING_MARGIN,
    FLOOR_MARGIN,
    detection_threshold,
    noise_edge,
    outlier_location,
    relative_noise_floor,
    roundoff_floor,
    signal_ceiling,
    theory_table,
)
from dlncheck.theory.tolerances import REALIZABLE_FUNCTION_TOL, reshuffled_function_variance, split_distance

__all__ = [
    "CEILING_MARGIN",
    "ESCAPE_FRACTION",
    "FLOOR_MARGIN",
    "REALIZABLE_FUNCTION_TOL",
    "ArrayLike",
    "aligned_loss",
    "aligned_movement",
    "balanced_residual_prediction",
    "detection_threshold",
    "discrete_gd_modes",
    "escape_halfwidth",
    "escape_order",
    "escape_time",
    "escape_time_asymptotic",
    "escape_windows",
    "euler_error",
    "mode_trajectory",
    "noise_edge",
    "outlier_location",
    "plateau_losses",
    "relative_noise_floor",
    "roundoff_floor",
    "reshuffled_function_variance",
    "signal_ceiling",
    "split_distance",
    "stage_plateaus",
    "theory_table",
    "alignment_exponent",
    "decoupled_exponent",
    "escape_values",
    "lag_checks",
    "predicted_lags",
]
