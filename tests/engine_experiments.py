"""Experiments shared by the engine-path equality tests (tests/test_fused.py, tests/test_per_sample.py):
each path trains them and is compared with the reference PyTorch path."""

from dlncheck import Experiment, Init, Teacher

TEACHER = Teacher(5, 7, (3.0, 2.0, 1.0))


def experiment(teacher=TEACHER, depth=3, width=6, steps=300, S=3, **kw) -> Experiment:
    """A small problem that trains within a few hundred steps: Gaussian init of scale 0.4, lr 0.05,
    batches of 8 out of 40 samples (each of these a keyword to change)."""
    return Experiment(
        teacher,
        depth,
        width,
        kw.pop("init", Init("gaussian", 0.4)),
        lr=kw.pop("lr", 0.05),
        steps=steps,
        batch_size=kw.pop("batch_size", 8),
        n_samples=kw.pop("n_samples", 40),
        sgd_runs=S,
        **kw,
    )


def random_shape_experiment(
    depth: int, widths: list[int], seed: int, batch: int, wide: int | None = None
) -> Experiment:
    """A hypothesis-drawn shape: ``widths`` = (d_out, d_in, *hidden) with the hidden widths repeated
    over the depth - 1 hidden layers (the first of them ``wide`` when given), a rank-2 teacher, a
    LeCun init, 60 steps of GD and 2 SGD runs, label noise on odd seeds."""
    d_out, d_in, *hidden = widths
    hidden = [wide or h for h in hidden[:1]] + hidden[1:]
    teacher = Teacher(d_out, d_in, (2.0, 1.0)[: min(d_out, d_in)], seed=seed)
    return experiment(
        teacher,
        depth,
        tuple((hidden * 3)[: depth - 1]),
        steps=60,
        S=2,
        batch_size=batch,
        init=Init("lecun", 0.8, seed=seed),
        seed=seed,
        label_noise=0.1 * (seed % 2),
        lr=0.02,
    )
