"""Where an Experiment's data come from, and the checks of its data options (issue #29).

``dataset="teacher"`` (default): Gaussian inputs, whitened or anisotropic (``input_condition``,
``input_basis``), labels from the teacher (:mod:`dlncheck.config.data`). ``"digits"`` and
``"digits-whitened"``: the optical-recognition digits of UCI (E. Alpaydin, C. Kaynak 1998; CC BY
4.0) as scikit-learn ships them, 1,797 8x8 images with pixels 0..16 and their classes, vendored as
``digits.csv.gz`` (57 KB, copied from scikit-learn 1.9.1's ``sklearn/datasets/data``, BSD-3; its
sha256 is checked on load) so that no 9 MB dependency is needed for one file. Inputs are the
pixels / 16, centred, projected on their top DIGITS_COMPONENTS principal components and scaled so
that the largest eigenvalue of Sxx is 1 (kappa about 10.6: the data's own anisotropy, whose
eigenvectors do not commute with Syx); ``-whitened`` then whitens them (Sxx = I). Labels are the
one-hot classes, centred (the network has no bias). Every assumption of the analytic picture
fails at once: the labels are not a linear map of the inputs, the modes couple, and, without
whitening, Sxx != I.
"""

from __future__ import annotations

import gzip
import hashlib
from functools import cache
from pathlib import Path

import numpy as np

from dlncheck.config import validation as check

DATASETS = ("teacher", "digits", "digits-whitened")
INPUT_BASES = ("teacher", "random")
DIGITS_FILE = Path(__file__).with_name("digits.csv.gz")
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
DIGITS_SAMPLES, DIGITS_CLASSES, DIGITS_COMPONENTS = 1797, 10, 16


@cache
def digits() -> tuple[np.ndarray, np.ndarray]:
    """(X (DIGITS_COMPONENTS, 1797), Y (10, 1797)) float64: the centred principal components
    (largest Sxx eigenvalue 1) and the centred one-hot labels (module docstring)."""
    blob = DIGITS_FILE.read_bytes()
    if hashlib.sha256(blob).hexdigest() != DIGITS_SHA256:
        raise RuntimeError(f"{DIGITS_FILE} is not the vendored digits file (sha256 differs): restore it from git")
    table = np.loadtxt(gzip.decompress(blob).decode().splitlines(), delimiter=",")
    pixels, classes = table[:, :-1] / 16.0, table[:, -1].astype(int)
    pixels -= pixels.mean(0)
    evals, evecs = np.linalg.eigh(pixels.T @ pixels / len(pixels))
    top = evecs[:, ::-1][:, :DIGITS_COMPONENTS]
    X = (pixels @ top).T / np.sqrt(evals[-1])
    Y = np.eye(DIGITS_CLASSES)[classes].T
    return X, Y - Y.mean(1, keepdims=True)


def check_options(experiment, n_samples: int) -> dict:
    """The checked data options of ``experiment`` (input_condition, input_basis, dataset), after
    checking that they fit together and with its teacher, samples and init (InvalidArgument otherwise)."""
    kappa = check.finite_float("input_condition", experiment.input_condition, min=1.0)
    basis = check.one_of("input_basis", experiment.input_basis, INPUT_BASES)
    dataset = check.one_of("dataset", experiment.dataset, DATASETS)
    options = {"input_condition": kappa, "input_basis": basis, "dataset": dataset}
    if kappa == 1 and basis != "teacher":
        check.fail("input_basis", basis, "a basis needs anisotropic inputs: set input_condition > 1")
    if dataset == "teacher":
        return options
    if kappa != 1:
        check.fail("input_condition", kappa, f"the {dataset} data have their own spectrum: leave it at 1")
    dims = (experiment.teacher.d_out, experiment.teacher.d_in)
    if dims != (DIGITS_CLASSES, DIGITS_COMPONENTS):
        check.fail(
            "teacher", dims, f"{dataset} needs a {DIGITS_CLASSES} x {DIGITS_COMPONENTS} teacher (data.digits_teacher)"
        )
    if n_samples != DIGITS_SAMPLES:
        check.fail("n_samples", n_samples, f"{dataset} has exactly {DIGITS_SAMPLES} samples")
    if experiment.init.kind == "aligned":
        check.fail(
            "Init.kind", experiment.init.kind, "an aligned init needs a teacher's frames: use balanced or gaussian"
        )
    return options
