"""assert_same: two Trajectories agree in every field to a relative tolerance."""

import pytest
import torch


def assert_same(a, b, rel: float = 1e-12):
    """Every field of Trajectory a equals b's to ``rel`` of each tensor's largest entry (NaN where b has NaN)."""
    assert a.experiment == b.experiment and a.loss_offset == pytest.approx(b.loss_offset, rel=rel)
    pairs = [(getattr(a, f), getattr(b, f)) for f in ("steps", "times", "loss", "checkpoint_steps")]
    pairs += list(zip(a.weights + a.initial_weights, b.weights + b.initial_weights))
    for x, y in pairs:
        assert x.shape == y.shape and x.dtype == y.dtype
        assert torch.equal(torch.isnan(x), torch.isnan(y))
        x, y = x.nan_to_num(), y.nan_to_num()
        scale = y.abs().max().clamp_min(torch.finfo(torch.float64).tiny)
        assert (x - y).abs().max() <= rel * scale, f"differs by {float((x - y).abs().max() / scale):.2e}"
