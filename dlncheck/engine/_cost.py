"""Cost model of one training step of one row (a (config, run) pair), in multiply-adds (MACs), and
the choices train(backend="auto") makes from it.

Widths d_0..d_L (d_0 = d_in, d_L = d_out), batch B, H = sum_{l=1}^{L-1} d_{l+1} d_l (the layers
above the first) and P = sum_{l=0}^{L-1} d_{l+1} d_l (all of them). Per row-step:

    moment form (engine._train; G = E Sxx - N, Sxx = X_b X_b^T / B):
        prefixes P_l = W_l P_{l-1} (d_0 H), W_l^T back (d_0 H), updates back P_{l-1}^T (d_0 H),
        G (d_L d_0^2; none for GD, G = E)              -> 3 d_0 H + d_L d_0^2
    per-sample form (engine._per_sample; a_0 = X_b, a_l = W_l a_{l-1}, delta_L = a_L - Y_b):
        forward (B P), backward delta_{l-1} = W_l^T delta_l (B H), updates delta_l a_{l-1}^T / B (B P)
                                                       -> B (2 P + H)
        plus, at every step whose loss is recorded, the chain P_L = W_L ... W_1 (d_0 H) for
        ||P_L - Syx||_F (the moment form has it for free).

For square widths d and L = 3 that is 7 d^3 against 8 d^2 B + 2 d^3 / loss_every: the per-sample
form wins once d > 8 B / 7 (without the loss) and d > 1.6 B (loss every step). GD rows (run 0)
always take the moment form: their batch is all n >= d_0 samples.

Kernels (CPU): the fused C kernel (engine._fused: register-tiled loops, one row at a time through
a segment, no dispatch) runs the moment form at every width at least as fast as batched GEMMs
through torch (MKL), and the per-sample form while a row's weights fit in FUSED_BYTES (about half
the 1 MiB L2); above that MKL wins. Measured on the 2-core AMD EPYC (Zen 4) of this project,
float64, one thread, us per run-step, S = 32 (S = 8 at 256 square and 512+, S = 1 at 2048), loss
at the checkpoints, each pair in one run:

    shape (weights per row)     form         fused     BLAS
    square 32   (24 KiB)        per-sample    14.5     24.2
    square 64   (96 KiB)        per-sample    66.7     64.8
    square 128  (384 KiB)       per-sample     284      321
    square 256  (1.5 MiB)       per-sample   3,210    2,362
    10-256-256-10 (532 KiB)     moment         170      196
    10-512-512-10 (2.1 MiB)     moment         851      919
    10-1024-1024-10 (8.4 MiB)   moment       3,490    3,935
    10-2048-2048-10 (34 MiB)    moment      31,728   35,200
"""

from __future__ import annotations

import math

FUSED_BYTES = 2**19  # the per-sample form on the fused C kernel up to this many bytes of weights per row
CHUNK_BYTES = 2**22  # rows per cache chunk: their weights fit in about this many bytes (L2/L3)
CHECK_MACS = 2**32  # divergence is checked at least every this much work (about 0.3 s at 30 GFLOP/s) ...
CHECK_SHARE = 0.1  # ... unless the check (the per-sample form's loss chain) would cost more than this share


def _sums(widths) -> tuple[int, int]:
    P = sum(widths[l + 1] * widths[l] for l in range(len(widths) - 1))
    return P, P - widths[1] * widths[0]


def chain_macs(widths) -> int:
    """The prefix chain W_L ... W_1 from the input side: d_0 H."""
    return widths[0] * _sums(widths)[1]


def moment_macs(widths, gd: bool = False) -> int:
    """One moment-form row-step: 3 d_0 H + d_L d_0^2 (GD, G = E: 3 d_0 H)."""
    return 3 * chain_macs(widths) + (0 if gd else widths[-1] * widths[0] ** 2)


def per_sample_macs(widths, batch: int, loss_share: float = 1.0) -> int:
    """One per-sample row-step: B (2 P + H), plus the loss chain on a share ``loss_share`` of steps."""
    P, H = _sums(widths)
    return batch * (2 * P + H) + math.ceil(loss_share * chain_macs(widths))


def formulation(widths, batch: int, loss_every: int) -> str:
    """'per-sample' when it costs fewer MACs per SGD row-step than the moment form, else 'moment'."""
    cheaper = per_sample_macs(widths, batch, 1 / loss_every) < moment_macs(widths)
    return "per-sample" if cheaper else "moment"


def kernel(widths, device: str, form: str = "moment", item_bytes: int = 8) -> str:
    """On the CPU 'fused' (the C kernel) for the moment form, and for the per-sample form up to
    FUSED_BYTES of weights per row, else 'blas' (torch batched GEMMs); on GPUs 'torch' (the
    reference path, every row in one launch per op)."""
    if device != "cpu":
        return "torch"
    return "fused" if form == "moment" or _sums(widths)[0] * item_bytes <= FUSED_BYTES else "blas"


def chunk_rows(widths, item_bytes: int) -> int:
    """Rows advanced together through a segment's steps: their weights fit in CHUNK_BYTES."""
    return max(1, CHUNK_BYTES // (_sums(widths)[0] * item_bytes))


def check_window(widths, batch: int, rows: int, form: str) -> int:
    """Steps between divergence checks (segment length) of the BLAS path: work CHECK_MACS per
    window, and for the per-sample form at least 1 / CHECK_SHARE loss chains' worth of steps."""
    if form == "per-sample":
        step = per_sample_macs(widths, batch, 0.0)
        floor = math.ceil(chain_macs(widths) / (CHECK_SHARE * max(step, 1)))
    else:
        step, floor = moment_macs(widths), 1
    return max(1, floor, CHECK_MACS // max(1, rows * step))
