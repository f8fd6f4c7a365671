"""Benchmarks: the engine against a naive per-run PyTorch loop, the fused path against the
reference PyTorch path, and an 8-init Ensemble against 8 separate train() calls, each ratio
measured in one run, single-threaded, min of several rounds.

Ratios are taken on CPU time (time.process_time: every side is single-threaded, and CPU time is
far less disturbed than wall time by other processes on a shared machine); pytest-benchmark's own
table (wall time) is kept beside them. Every side does the same work per run-step: one minibatch
SGD step (GD: full batch) and the full-data loss. The naive loop is bias-free nn.Linear layers +
autograd + torch.optim.SGD, one run at a time. Numbers are printed and written to
reports/bench/engine.json. The asserted floors sit below the ratios measured on the shared 2-core
machine (docs/performance.md); the issue's targets are stated beside them and reported, not asserted.
"""

import json
import time
from pathlib import Path

import pytest
import torch

from dlncheck import Ensemble
from dlncheck.config.data import init_weights, make_problem
from dlncheck.config.experiment import Experiment, Init, Teacher
from dlncheck.config.threads import cpu_threads
from dlncheck.engine import _fused as fused
from dlncheck.engine import train
from dlncheck.engine._batches import batch_indices
from dlncheck.store.atomic import write_json

STEPS, NAIVE_STEPS = 400, 25
OUT = Path(__file__).resolve().parents[1] / "reports" / "bench" / "engine.json"
HAS_FUSED = fused.supports(
    Experiment(
        Teacher(2, 2, (1.0,)), 1, 1, Init("gaussian", 1.0), lr=0.1, steps=1, batch_size=1, n_samples=2, sgd_runs=0
    )
)


def bench_experiment(sgd_runs: int, steps: int = STEPS) -> Experiment:
    teacher = Teacher(10, 10, (5.0, 4.0, 3.0, 2.0, 1.0))
    return Experiment(
        teacher, 3, 10, Init("gaussian", 0.3), lr=0.01, steps=steps, batch_size=20, n_samples=200, sgd_runs=sgd_runs
    )


def naive_seconds_per_run_step(exp: Experiment, steps: int = NAIVE_STEPS) -> float:
    """CPU time of the naive loop over every run for ``steps`` steps; seconds per run-step."""
    problem = make_problem(exp)
    X, Y = problem.X.T, problem.Y.T
    nets = []
    for _ in range(exp.runs):
        layers = [torch.nn.Linear(w.shape[1], w.shape[0], bias=False).double() for w in init_weights(exp)]
        with torch.no_grad():
            for layer, w in zip(layers, init_weights(exp)):
                layer.weight.copy_(w)
        net = torch.nn.Sequential(*layers)
        nets.append((net, torch.optim.SGD(net.parameters(), lr=exp.lr)))
    orders = [None] + [batch_indices(exp, r, steps) for r in range(1, exp.runs)]
    losses = torch.empty(exp.runs, steps)
    with cpu_threads("cpu"):
        start = time.process_time()
        for k in range(steps):
            for r, (net, opt) in enumerate(nets):
                xb, yb = (X, Y) if r == 0 else (X[orders[r][k]], Y[orders[r][k]])
                opt.zero_grad()
                (0.5 * (net(xb) - yb).pow(2).sum(1).mean()).backward()
                opt.step()
                with torch.no_grad():
                    losses[r, k] = 0.5 * (net(X) - Y).pow(2).sum(1).mean()
        elapsed = time.process_time() - start
    return elapsed / (steps * exp.runs)


def _seconds(fn, repeat: int = 3) -> float:
    """Min CPU time of ``repeat`` calls, single-threaded."""
    best = float("inf")
    with cpu_threads("cpu"):
        for _ in range(repeat):
            start = time.process_time()
            fn()
            best = min(best, time.process_time() - start)
    return best


def _record(key: str, value) -> None:
    data = json.loads(OUT.read_text()) if OUT.exists() else {}
    write_json(OUT, data | {key: value})


@pytest.mark.benchmark(group="engine-vs-naive")
@pytest.mark.parametrize("S, floor", [(32, 150.0), (128, 150.0)], ids=["S32", "S128"])
def test_engine_vs_naive_per_run_step(benchmark, S, floor):
    """Target (issue 15): <= 2 us per run-step at S = 32 on a quiet core, ~300x the naive loop.

    The floor is a regression guard, not the target: measured ratios on the 2-core CI machine run
    197x-234x (a CI run at 197x failed a 200x floor), the PyTorch path alone gives about 80-100x,
    so 150x fails exactly when the fused path is lost or slowed by a third, and not on noise.
    """
    exp = bench_experiment(S)
    run_steps = exp.steps * exp.runs
    naive = min(naive_seconds_per_run_step(exp, NAIVE_STEPS * 32 // S) for _ in range(2))
    reference = _seconds(lambda: train(exp, backend="torch")) / run_steps
    benchmark.pedantic(train, args=(exp,), rounds=2, iterations=1, warmup_rounds=1)
    engine = _seconds(lambda: train(exp), repeat=5) / run_steps
    numbers = {
        "S": S,
        "L": 3,
        "d": 10,
        "n": 200,
        "B": 20,
        "dtype": "float64",
        "fused": HAS_FUSED,
        "naive_us_per_run_step": naive * 1e6,
        "engine_us_per_run_step": engine * 1e6,
        "torch_path_us_per_run_step": reference * 1e6,
        "ratio_vs_naive": naive / engine,
        "torch_path_ratio_vs_naive": naive / reference,
        "fused_vs_torch_path": reference / engine,
    }
    benchmark.extra_info.update(numbers)
    _record(f"engine_vs_naive_S{S}", numbers)
    print(
        f"\nS={S}: engine {engine * 1e6:.2f} us/run-step (torch path {reference * 1e6:.2f}), naive "
        f"{naive * 1e6:.1f}: {naive / engine:.0f}x (torch path {naive / reference:.0f}x)"
    )
    assert naive / engine >= floor, f"engine only {naive / engine:.0f}x faster than the naive loop: {numbers}"
    if HAS_FUSED:
        assert reference / engine >= 1.5, f"the fused path is only {reference / engine:.1f}x the torch path"


@pytest.mark.benchmark(group="ensemble-vs-separate")
@pytest.mark.parametrize("backend, floor", [("auto", 1.1), ("torch", 1.3)], ids=["fused", "torch-path"])
def test_ensemble_vs_separate_calls(benchmark, backend, floor):
    """8 inits at S = 32 in one train(ensemble) against 8 train() calls (target: >= 5x)."""
    exp = bench_experiment(32)
    ens = Ensemble(exp, [Init("gaussian", 0.3, seed=i) for i in range(8)])
    separate = _seconds(lambda: [train(e, backend=backend) for e in ens.experiments])
    benchmark.pedantic(train, args=(ens,), kwargs={"backend": backend}, rounds=2, iterations=1, warmup_rounds=1)
    together = _seconds(lambda: train(ens, backend=backend))
    ratio = separate / together
    numbers = {
        "configs": 8,
        "S": 32,
        "steps": exp.steps,
        "backend": backend,
        "ensemble_s": together,
        "separate_s": separate,
        "ratio": ratio,
        "target": 5.0,
        "us_per_run_step": together / (8 * exp.runs * exp.steps) * 1e6,
    }
    benchmark.extra_info.update(numbers)
    _record(f"ensemble_vs_separate_{backend}", numbers)
    print(f"\n8-init ensemble ({backend}): {together:.3f} s vs 8 calls {separate:.3f} s: {ratio:.2f}x")
    assert ratio >= floor, f"the ensemble is only {ratio:.2f}x faster than separate calls: {numbers}"


@pytest.mark.benchmark(group="engine-time-per-step")
def test_engine_time_per_step_as_runs_grow(benchmark):
    """Time per step for S = 1, 8, 32, 128; the cost per run-step at S = 128 is below half the
    cost per run-step at S = 1 (fixed per-step and per-call costs are shared by the runs)."""
    per_step = {}
    for S in (1, 8, 32, 128):
        exp = bench_experiment(S, steps=200)
        train(exp)  # warm-up
        per_step[S] = _seconds(lambda exp=exp: train(exp)) / exp.steps
    benchmark.pedantic(train, args=(bench_experiment(128, steps=200),), rounds=1, iterations=1)
    table = {f"S={S}": {"us_per_step": t * 1e6, "us_per_run_step": t / (S + 1) * 1e6} for S, t in per_step.items()}
    benchmark.extra_info.update(table)
    _record("time_per_step", table)
    print(
        "\n"
        + "\n".join(
            f"{k}: {v['us_per_step']:.0f} us/step, {v['us_per_run_step']:.2f} us/run-step" for k, v in table.items()
        )
    )
    assert per_step[128] / 129 < per_step[1] / 2, f"no amortisation over runs: {table}"
