"""Benchmark: the batched engine against a naive per-run PyTorch loop, measured in one run.

Both do the same work per run-step: one minibatch SGD step (GD: full batch) and the full-data
loss. The naive loop is bias-free nn.Linear layers + autograd + torch.optim.SGD, one run at a
time, single-threaded (its fastest setting for these tiny matrices; the engine also runs
single-threaded). Ratios and times per step are printed and written to reports/bench/engine.json.
"""
import json
import time
from pathlib import Path

import pytest
import torch

from dlncheck.data import init_weights, make_problem
from dlncheck.engine import _cpu_threads, batch_indices, train
from dlncheck.experiment import Experiment, Init, Teacher
from dlncheck.atomic import write_json

TARGET = 100.0          # the target per run-step; NOT met: measured 60-90x (README)
FLOOR = 50.0            # regression floor asserted below the measured range
STEPS, NAIVE_STEPS = 400, 25
OUT = Path(__file__).resolve().parents[1] / "reports" / "bench" / "engine.json"


def bench_experiment(sgd_runs: int, steps: int = STEPS) -> Experiment:
    teacher = Teacher(10, 10, (5.0, 4.0, 3.0, 2.0, 1.0))
    return Experiment(teacher, 3, 10, Init("gaussian", 0.3), lr=0.01, steps=steps, batch_size=20,
                      n_samples=200, sgd_runs=sgd_runs)


def naive_seconds_per_run_step(exp: Experiment) -> float:
    """Time the naive loop over every run for NAIVE_STEPS steps; seconds per run-step."""
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
    orders = [None] + [batch_indices(exp, r, NAIVE_STEPS) for r in range(1, exp.runs)]
    losses = torch.empty(exp.runs, NAIVE_STEPS)
    with _cpu_threads("cpu"):
        start = time.perf_counter()
        for k in range(NAIVE_STEPS):
            for r, (net, opt) in enumerate(nets):
                xb, yb = (X, Y) if r == 0 else (X[orders[r][k]], Y[orders[r][k]])
                opt.zero_grad()
                (0.5 * (net(xb) - yb).pow(2).sum(1).mean()).backward()
                opt.step()
                with torch.no_grad():
                    losses[r, k] = 0.5 * (net(X) - Y).pow(2).sum(1).mean()
        elapsed = time.perf_counter() - start
    return elapsed / (NAIVE_STEPS * exp.runs)


def _record(key: str, value) -> None:
    data = json.loads(OUT.read_text()) if OUT.exists() else {}
    write_json(OUT, data | {key: value})


@pytest.mark.benchmark(group="engine-vs-naive")
def test_engine_vs_naive_per_run_step(benchmark):
    exp = bench_experiment(32)
    naive = min(naive_seconds_per_run_step(exp) for _ in range(2))
    benchmark.pedantic(train, args=(exp,), rounds=3, iterations=1, warmup_rounds=1)
    engine = benchmark.stats.stats.min / (exp.steps * exp.runs)
    ratio = naive / engine
    benchmark.extra_info.update(naive_us_per_run_step=naive * 1e6, engine_us_per_run_step=engine * 1e6,
                                ratio=ratio)
    _record("engine_vs_naive", {"S": 32, "L": 3, "d": 10, "n": 200, "B": 20, "dtype": "float64",
                                "naive_us_per_run_step": naive * 1e6, "engine_us_per_run_step": engine * 1e6,
                                "ratio": ratio, "target": TARGET, "floor": FLOOR})
    print(f"\nengine {engine * 1e6:.2f} us/run-step, naive {naive * 1e6:.1f} us/run-step: {ratio:.1f}x")
    # Each step is ~10 tiny batched ops whose dispatch overhead dominates (33 10x10 matrices), so
    # the measured ratio is 60-90x, short of the 100x target; the floor catches regressions.
    assert ratio >= FLOOR, (f"engine only {ratio:.1f}x faster than the naive loop per run-step "
                            f"(measured 60-90x when written; target {TARGET:g}x)")


def _seconds(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.benchmark(group="engine-time-per-step")
def test_engine_time_per_step_as_runs_grow(benchmark):
    """Time per step for S = 1, 8, 32, 128; batching must amortise: the cost per run-step at
    S = 128 is below the cost per run-step at S = 1."""
    per_step = {}
    for S in (1, 8, 32, 128):
        exp = bench_experiment(S, steps=200)
        train(exp)  # warm-up
        per_step[S] = _seconds(lambda: train(exp)) / exp.steps
    benchmark.pedantic(train, args=(bench_experiment(128, steps=200),), rounds=1, iterations=1)
    table = {f"S={S}": {"us_per_step": t * 1e6, "us_per_run_step": t / (S + 1) * 1e6} for S, t in per_step.items()}
    benchmark.extra_info.update(table)
    _record("time_per_step", table)
    print("\n" + "\n".join(f"{k}: {v['us_per_step']:.0f} us/step, {v['us_per_run_step']:.2f} us/run-step"
                            for k, v in table.items()))
    assert per_step[128] / 129 < per_step[1] / 2, f"no amortisation over runs: {table}"
