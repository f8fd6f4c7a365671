"""Frozen, validated descriptions of a DLN experiment: the teacher, the init, the run grid.

Everything here is pure configuration: no tensors are kept on the objects except the
teacher's SVD factors, which are derived deterministically from the teacher's seed.
``Experiment.key()`` is a content hash used by :mod:`dlncheck.store.cache`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from functools import cached_property

import torch

from dlncheck.config import datasets
from dlncheck.config import validation as check

TEACHER_KINDS = ("lowrank", "fullrank", "degenerate")
INIT_KINDS = ("aligned", "balanced", "gaussian", "lecun")
BATCH_KINDS = ("reshuffle", "independent")
DTYPES = check.DTYPES

_fail = check.fail


def random_orthogonal(n: int, generator: torch.Generator) -> torch.Tensor:
    """Haar-distributed n x n orthogonal matrix (QR of a Gaussian with sign fix; Mezzadri 2007)."""
    q, r = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    return q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0)


@dataclass(frozen=True)
class Teacher:
    """Teacher M = U diag(s) V^T (d_out x d_in) with seeded Haar-random orthogonal U, V.

    ``s`` pads ``singular_values`` with zeros to min(d_out, d_in). kind: "degenerate" if a
    non-zero value repeats, else "fullrank" if rank == min(d_out, d_in), else "lowrank".

    Parameters
    ----------
    d_out, d_in : int
        Output and input dimensions (M is d_out x d_in).
    singular_values : tuple of float
        The non-zero singular values, descending, at most min(d_out, d_in) of them.
    seed : int, default 0
        Seed of U and V (Haar-random: QR of a Gaussian with the sign fix, Mezzadri 2007).
    """

    d_out: int
    d_in: int
    singular_values: tuple[float, ...]
    seed: int = 0

    def __post_init__(self):
        for name in ("d_out", "d_in"):
            object.__setattr__(self, name, check.integral(name, getattr(self, name), min=1))
        values = check.real_sequence("singular_values", self.singular_values)
        object.__setattr__(self, "singular_values", values)
        object.__setattr__(self, "seed", check.seed("Teacher.seed", self.seed))
        if list(values) != sorted(values, reverse=True):
            _fail("singular_values", values, "give non-negative values in descending order")
        if len(values) > min(self.d_out, self.d_in):
            _fail("singular_values", values, f"give at most min(d_out, d_in) = {min(self.d_out, self.d_in)} values")

    @cached_property
    def _factors(self):
        g = torch.Generator().manual_seed(int(self.seed))
        return random_orthogonal(self.d_out, g), random_orthogonal(self.d_in, g)

    @property
    def U(self) -> torch.Tensor:
        return self._factors[0]

    @property
    def V(self) -> torch.Tensor:
        return self._factors[1]

    @property
    def s(self) -> torch.Tensor:
        s = torch.zeros(min(self.d_out, self.d_in), dtype=torch.float64)
        s[: len(self.singular_values)] = torch.tensor(self.singular_values, dtype=torch.float64)
        return s

    @property
    def M(self) -> torch.Tensor:
        k = len(self.s)
        return self.U[:, :k] @ torch.diag(self.s) @ self.V[:, :k].T

    @property
    def rank(self) -> int:
        return sum(v > 0 for v in self.singular_values)

    @property
    def kind(self) -> str:
        nonzero = [v for v in self.singular_values if v > 0]
        if len(set(nonzero)) < len(nonzero):
            return "degenerate"
        return "fullrank" if self.rank == min(self.d_out, self.d_in) else "lowrank"


@dataclass(frozen=True)
class Init:
    """Initial weights. kinds:

    - ``aligned``: W_l = scale * Q_l E Q_{l-1}^T with Q_0 = V, Q_L = U (teacher bases), random
      orthonormal hidden Q_l and E the rectangular identity on the first min(widths) modes:
      balanced and decoupled, every mode starts at u0 = scale^L (Saxe et al. 2014).
    - ``balanced``: the same with random Q_0, Q_L as well: exactly balanced
      (W_{l+1}^T W_{l+1} = W_l W_l^T), every layer's non-zero singular values equal ``scale``.
    - ``gaussian``: iid N(0, scale^2) entries.
    - ``lecun``: iid N(0, scale^2 / fan_in) entries (variance ~ 1/fan_in, the NTK-style init).

    Parameters
    ----------
    kind : {"aligned", "balanced", "gaussian", "lecun"}
        The construction above.
    scale : float
        Its scale (>= 0): the layers' singular values, or the entries' standard deviation.
    seed : int, default 0
        Seed of the random frames or entries (independent of the data seed).
    layer_scales : tuple of float, default ()
        Unbalanced init: layer l is multiplied by c_l (one positive factor per layer, product 1, so
        the end-to-end map is unchanged); () keeps every layer as built
        (:func:`dlncheck.config.data.imbalance`).
    """

    kind: str
    scale: float
    seed: int = 0
    layer_scales: tuple[float, ...] = ()

    def __post_init__(self):
        check.one_of("Init.kind", self.kind, INIT_KINDS)
        object.__setattr__(self, "scale", check.nonneg("Init.scale", self.scale))
        object.__setattr__(self, "seed", check.seed("Init.seed", self.seed))
        scales = check.real_sequence("Init.layer_scales", self.layer_scales)
        object.__setattr__(self, "layer_scales", scales)
        if any(c <= 0 for c in scales) or abs(math.fsum(math.log(c) for c in scales if c > 0)) > 1e-9:
            why = "give positive per-layer factors whose product is 1 (dlncheck.config.data.imbalance builds them)"
            _fail("Init.layer_scales", scales, why)


@dataclass(frozen=True)
class Experiment:
    """One GD run (run 0) and ``sgd_runs`` SGD runs (runs 1..S) from the same initial weights.

    Loss L = 1/(2n) sum_k ||y_k - W_L...W_1 x_k||^2 on n inputs with second moment
    X X^T / n = Sxx (I: whitened, the default) and labels y_k = M x_k (+ label noise); each step
    W_l <- W_l - lr dL/dW_l on the full data (GD) or on a batch (SGD).

    Parameters
    ----------
    teacher : Teacher
        The target map M.
    depth : int
        Number of weight matrices L (1 <= L <= 128).
    width : int or tuple of int
        Every hidden width, or the depth - 1 hidden widths d_1..d_{L-1}.
    init : Init
        The initial weights (shared by all runs).
    lr : float
        Step size (> 0).
    steps : int
        Number of steps; time t = lr * step.
    batch_size : int
        SGD batch size B (1 <= B <= n_samples), drawn without replacement.
    n_samples : int
        Number of samples n (>= d_in, so the inputs can be whitened).
    sgd_runs : int
        Number of SGD runs S (>= 0); each has its own batch order, seeded by (seed, run).
    seed : int, default 0
        Seed of the data and the batch orders.
    label_noise : float, default 0.0
        Standard deviation of Gaussian noise added to the labels (fixed with the data set).
    dtype : {"float64", "float32"}, default "float64"
        Precision of the weights and data.
    input_condition, input_basis, dataset : float, str, str, defaults 1.0, "teacher", "teacher"
        Condition number kappa >= 1 of Sxx (eigenvalues geometric from 1 to 1 / kappa; 1: whitened),
        its eigenvectors ("teacher": the teacher's V; "random": a seeded Haar basis), and where the
        data come from ("teacher", "digits", "digits-whitened"): :mod:`dlncheck.config.datasets`.
        Data with Sxx != I train on the PyTorch path (the other paths assume Sxx = I).
    device : str, default "cpu"
        "cpu" or "cuda" ("cuda:i").
    batches : {"reshuffle", "independent"}, default "reshuffle"
        How SGD draws its batches: "reshuffle", a fresh permutation every epoch cut into n // B
        batches (each epoch's batch noise sums to zero); "independent", every step a uniform
        B-subset drawn afresh (i.i.d. batches: the premise of the Ornstein-Uhlenbeck and
        independent-batch Boltzmann laws). Part of ``key()`` only when not the default, so the
        keys of reshuffled experiments are unchanged.
    """

    teacher: Teacher
    depth: int
    width: int | tuple[int, ...]
    init: Init
    lr: float
    steps: int
    batch_size: int
    n_samples: int
    sgd_runs: int
    seed: int = 0
    label_noise: float = 0.0
    dtype: str = "float64"
    device: str = "cpu"
    input_condition: float = 1.0
    input_basis: str = "teacher"
    dataset: str = "teacher"
    batches: str = "reshuffle"

    def __post_init__(self):
        if not isinstance(self.teacher, Teacher):
            _fail("teacher", self.teacher, "pass a dlncheck.Teacher")
        if not isinstance(self.init, Init):
            _fail("init", self.init, "pass a dlncheck.Init")
        depth = check.depth("depth", self.depth)  # number of weight matrices
        n_samples = check.integral(
            "n_samples",
            self.n_samples,
            min=self.teacher.d_in,
            why=" (n_samples >= d_in, so the inputs can be whitened)",
        )
        fields: dict[str, object] = {
            "depth": depth,
            "lr": check.finite_float("lr", self.lr, positive=True),
            "steps": check.steps("steps", self.steps),
            "n_samples": n_samples,
            "sgd_runs": check.integral("sgd_runs", self.sgd_runs, min=0),
            "seed": check.seed("seed", self.seed),
            "label_noise": check.nonneg("label_noise", self.label_noise),
            "dtype": check.dtype("dtype", self.dtype),
            "device": check.device("device", self.device),
            **datasets.check_options(self, n_samples),
            "batches": check.one_of("batches", self.batches, BATCH_KINDS),
        }
        if self.init.layer_scales and len(self.init.layer_scales) != depth:
            _fail("Init.layer_scales", self.init.layer_scales, f"give exactly depth = {depth} factors")
        fields["batch_size"] = check.integral(
            "batch_size", self.batch_size, min=1, max=n_samples, why=" (1 <= batch_size <= n_samples)"
        )
        if isinstance(self.width, (list, tuple)):
            fields["width"] = hidden = check.int_sequence("width", self.width, min=1)
            if len(hidden) != depth - 1:
                _fail("width", self.width, f"give an int or exactly depth-1 = {depth - 1} hidden widths")
        else:
            fields["width"] = check.integral("width", self.width, min=1)
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @property
    def widths(self) -> tuple[int, ...]:
        """(d_0, ..., d_L): d_0 = d_in, d_L = d_out."""
        hidden = self.width if isinstance(self.width, tuple) else (self.width,) * (self.depth - 1)
        return (self.teacher.d_in, *hidden, self.teacher.d_out)

    @property
    def whitened(self) -> bool:
        """Inputs with X X^T / n = I (the engine's fused and BLAS paths assume it)."""
        return self.input_condition == 1 and self.dataset != "digits"

    @property
    def noisy_labels(self) -> bool:
        """Labels off the least-squares map (label noise, or a data set's own labels)."""
        return self.label_noise > 0 or self.dataset != "teacher"

    runs = property(lambda self: 1 + self.sgd_runs)
    torch_dtype = property(lambda self: DTYPES[self.dtype])

    @property
    def roundoff_scale(self) -> float:
        """Unit roundoff of this dtype over float64's (1, or ~5.4e8 for float32): scales float64 tolerances."""
        return torch.finfo(self.torch_dtype).eps / torch.finfo(torch.float64).eps

    def to_dict(self) -> dict:
        """Every field; the data, init and batch options added after the first release only when set,
        so that the cache keys of whitened, reshuffled, as-built experiments stay what they were."""
        spec = dataclasses.asdict(self) | {"width": list(self.widths[1:-1])}
        defaults = {"input_condition": 1.0, "input_basis": "teacher", "dataset": "teacher", "batches": BATCH_KINDS[0]}
        spec = {k: v for k, v in spec.items() if k not in defaults or v != defaults[k]}
        if not spec["init"]["layer_scales"]:
            del spec["init"]["layer_scales"]
        return spec

    def key(self) -> str:
        """Content hash of the full specification (stable across sessions)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    @classmethod
    def from_dict(cls, spec: dict) -> Experiment:
        spec = dict(spec)
        teacher, init = spec.pop("teacher"), spec.pop("init")
        return cls(
            teacher=Teacher(**teacher | {"singular_values": tuple(teacher["singular_values"])}),
            init=Init(**init | {"layer_scales": tuple(init.get("layer_scales", ()))}),
            **spec | {"width": tuple(spec["width"])},
        )
