"""Speed: the derived SGD offsets (theory.sgd) of an 8-init ensemble, one batched GD-path program
(ensemble_offsets) against 8 separate predicted_offsets calls, as the claims ran them before.

Both sides single-threaded, CPU time (time.process_time), min of 3 rounds; both give the same
offsets to 1e-12. Size: the saddle presets' shape (L = 3, width 8, d = 6, n = 60), 1500 steps.
"""

import time

import numpy as np

from dlncheck import Ensemble
from dlncheck.config.experiment import Experiment, Init, Teacher
from dlncheck.config.threads import cpu_threads
from dlncheck.theory import sgd

INITS, ROUNDS = 8, 3


def cpu_seconds(fn):
    """(result, min CPU seconds over ROUNDS calls), single-threaded."""
    best, out = float("inf"), None
    with cpu_threads("cpu"):
        for _ in range(ROUNDS):
            start = time.process_time()
            out = fn()
            best = min(best, time.process_time() - start)
    return out, best


def test_ensemble_offsets_beat_one_call_per_init(benchmark):
    base = Experiment(
        Teacher(6, 6, (4.0, 2.0, 1.0), seed=1),
        3,
        8,
        Init("gaussian", 0.05),
        lr=0.02,
        steps=1500,
        batch_size=10,
        n_samples=60,
        sgd_runs=4,
    )
    ens = Ensemble(base, [Init("gaussian", 0.05, seed=s) for s in range(INITS)])
    loop, t_loop = cpu_seconds(lambda: [sgd.predicted_offsets(e) for e in ens.experiments])
    batched, t_batched = cpu_seconds(lambda: sgd.ensemble_offsets(ens))
    benchmark.pedantic(sgd.ensemble_offsets, args=(ens,), rounds=1, iterations=1)
    for a, b in zip(batched, loop):
        np.testing.assert_allclose(a["offsets"], b["offsets"], rtol=1e-12, atol=1e-14)
    ratio = t_loop / t_batched
    benchmark.extra_info.update(loop_cpu_s=t_loop, batched_cpu_s=t_batched, speedup=ratio)
    print(
        f"\nSGD offsets of {INITS} inits, L=3, 1500 steps: one call per init {t_loop:.2f} s CPU, "
        f"ensemble_offsets {t_batched:.2f} s CPU, speedup {ratio:.1f}x"
    )
    assert ratio > 2.0, f"batched GD-path program only {ratio:.2f}x faster than one call per init"
