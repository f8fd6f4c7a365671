"""The public API documents its parameters (numpydoc ``Parameters`` sections, issue #24 item 6)."""

import inspect
import re

import pytest

import dlncheck
from dlncheck import spectra
from dlncheck.saddles import NormalForm, certify

PUBLIC = [
    dlncheck.train,
    dlncheck.Experiment,
    dlncheck.Teacher,
    dlncheck.Init,
    dlncheck.Ensemble,
    dlncheck.Trajectory,
    dlncheck.EnsembleTrajectory,
    NormalForm,
    certify,
    *(getattr(spectra, name) for name in spectra.__all__ if inspect.isfunction(getattr(spectra, name))),
]


def documented(doc: str) -> set[str]:
    """Names in the Parameters section: its unindented lines, ``a, b : type`` or ``a``."""
    block = doc.split("Parameters\n----------\n", 1)[1]
    block = re.split(r"\n\n(?=\w[\w ]*\n-+\n)", block)[0]  # up to the next section
    return {
        name.strip() for line in block.splitlines() if line[:1].isalpha() for name in line.split(" : ")[0].split(",")
    }


@pytest.mark.parametrize("obj", PUBLIC, ids=lambda obj: obj.__qualname__)
def test_public_api_documents_every_parameter(obj):
    doc = inspect.getdoc(obj) or ""
    assert "Parameters\n----------\n" in doc, f"{obj.__qualname__}: add a numpydoc Parameters section"
    params = [p for p in inspect.signature(obj).parameters if p not in ("self", "cls")]
    missing = [p for p in params if p not in documented(doc)]
    assert not missing, f"{obj.__qualname__}: parameters {missing} are not in its Parameters section"
