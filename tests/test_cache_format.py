"""Cache format 2: exact round trip of every dtype, compression of trajectory-like arrays, the
storage rule (worth_storing) and the format in the key."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dlncheck import presets
from dlncheck.store import _format as cache_format
from dlncheck.store.cache import TrajectoryCache
from dlncheck.store.policy import ALWAYS_STORE_MB, worth_storing


def _same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.uint8, np.bool_]),
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    )
)
def test_encode_decode_is_bit_exact(array):
    stored, layout = cache_format.encode({"a": array})
    assert _same(cache_format.decode(stored, layout)["a"], array)


def test_file_round_trip_keeps_float64_bits_nan_and_signed_zero(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "weights_0": rng.standard_normal((3, 7, 4, 5)) * 1e-12,
        "loss": rng.random((3, 11)),
        "steps": np.arange(11),
        "offset": np.asarray(0.25),
    }
    arrays["weights_0"][1, 3] = np.nan
    arrays["loss"][0, 0] = -0.0
    digest, layout = cache_format.write(tmp_path / "e.npz", arrays)
    back = cache_format.read(tmp_path / "e.npz", json.loads(json.dumps(layout)))
    assert set(back) == set(arrays) and all(_same(back[k], arrays[k]) for k in arrays)
    assert len(digest) == 64


def test_trajectory_like_weights_shrink(tmp_path):
    """Slowly moving float64 weights (a random walk of relative step 1e-3, as between
    checkpoints): format 2 must be at most 0.8x the raw bytes; plain np.savez is 1.0x."""
    rng = np.random.default_rng(1)
    w = 0.3 + np.cumsum(1e-3 * rng.standard_normal((9, 200, 16, 16)), axis=1)
    cache_format.write(tmp_path / "w.npz", {"weights_0": w})
    assert (tmp_path / "w.npz").stat().st_size <= 0.8 * w.nbytes


def test_unshuffle_names_the_mismatch():
    with pytest.raises(ValueError, match="does not hold"):
        cache_format.unshuffle(np.zeros((8, 3), np.uint8), "<f8", [2, 2])


def test_worth_storing_rule():
    mb = 1_000_000
    assert worth_storing(int(ALWAYS_STORE_MB * mb), 0.0)  # small: always
    assert not worth_storing(100 * mb, 1.0, min_seconds_per_mb=0.05)  # 10 ms per MB: recompute
    assert worth_storing(100 * mb, 5.0, min_seconds_per_mb=0.05)  # 50 ms per MB: store


@pytest.fixture(scope="module")
def big():
    """An NTK trajectory of ~5.6 MB raw (above ALWAYS_STORE_MB), trained in well under a second."""
    return presets.experiment("ntk", "lowrank", 3, sgd_runs=1, steps=20)


def test_cheap_large_entry_stays_in_memory(tmp_path, big):
    cache = TrajectoryCache(tmp_path, min_seconds_per_mb=1e9)
    first = cache(big, checkpoints=20)
    assert sum(a.nbytes for a in first.to_arrays().values()) > ALWAYS_STORE_MB * 1e6
    assert not list(tmp_path.glob("trajectory-*")) and cache.stats["memory_only"] == 1
    assert cache(big, checkpoints=20) is first
    stored = TrajectoryCache(tmp_path, min_seconds_per_mb=0.0)
    again = stored(big, checkpoints=20)
    assert len(list(tmp_path.glob("trajectory-*.npz"))) == 1
    back = TrajectoryCache(tmp_path)(big, checkpoints=20)
    for a, b in zip(back.weights + [back.loss], again.weights + [again.loss]):
        assert torch.equal(a, b)
    assert torch.equal(back.weights[0], first.weights[0])


def test_key_holds_the_format(monkeypatch, big):
    key = TrajectoryCache(None).key("trajectory", big, {})
    monkeypatch.setattr(cache_format, "FORMAT", cache_format.FORMAT + 1)
    assert TrajectoryCache(None).key("trajectory", big, {}) != key


def test_entry_of_another_format_is_recomputed(tmp_path, big):
    cache = TrajectoryCache(tmp_path, min_seconds_per_mb=0.0)
    first = cache(big, checkpoints=3)
    spec = next(tmp_path.glob("trajectory-*.json"))
    meta = json.loads(spec.read_text())
    spec.write_text(json.dumps(meta | {"format": 1}))
    fresh = TrajectoryCache(tmp_path)
    with pytest.warns(UserWarning, match="unreadable"):
        again = fresh(big, checkpoints=3)
    assert fresh.stats["computed"] == 1 and fresh.stats["disk"] == 0  # retrained, not read
    torch.testing.assert_close(again.loss, first.loss, rtol=0, atol=0)
