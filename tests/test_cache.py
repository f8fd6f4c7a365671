"""Cache: round trip through disk, memoization, corruption detection, keys."""

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlncheck import Init, presets
from dlncheck.store.cache import TrajectoryCache


@pytest.fixture(scope="module")
def exp():
    return presets.experiment("saddle", "lowrank", 2, sgd_runs=2)


def test_round_trip_and_memo(tmp_path, exp):
    first = TrajectoryCache(tmp_path)(exp, checkpoints=5)
    assert TrajectoryCache(tmp_path)(exp, checkpoints=5) is not first
    again = TrajectoryCache(tmp_path)(exp, checkpoints=5)
    assert torch.equal(again.loss, first.loss) and torch.equal(again.checkpoint_steps, first.checkpoint_steps)
    for a, b in zip(again.weights + again.initial_weights, first.weights + first.initial_weights):
        assert torch.equal(a, b)
    assert again.experiment == exp
    cache = TrajectoryCache(None)
    assert cache(exp) is cache(exp)
    assert len(list(tmp_path.glob("trajectory-*.npz"))) == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_aligned_round_trip(tmp_path, exp):
    a = TrajectoryCache(tmp_path).aligned(exp, points_per_window=1)
    b = TrajectoryCache(tmp_path).aligned(exp, points_per_window=1)
    assert a.labels == b.labels and a.kinds == b.kinds and a.windows == b.windows
    assert torch.equal(a.steps, b.steps) and torch.equal(a.weights[0], b.weights[0])
    assert torch.equal(a.trajectory.loss, b.trajectory.loss)


@pytest.mark.parametrize("damage", ["truncate", "flip", "json"])
def test_corrupt_entry_is_recomputed_with_warning(tmp_path, exp, damage):
    good = TrajectoryCache(tmp_path)(exp)
    npz = next(tmp_path.glob("trajectory-*.npz"))
    if damage == "truncate":
        npz.write_bytes(npz.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(npz.read_bytes())
        data[len(data) // 2] ^= 0xFF
        npz.write_bytes(bytes(data))
    else:
        npz.with_suffix(".json").write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable"):
        again = TrajectoryCache(tmp_path)(exp)
    assert torch.equal(again.loss, good.loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TrajectoryCache(tmp_path)(exp)  # the entry was rewritten


def test_key_depends_on_experiment_and_kwargs(exp):
    cache = TrajectoryCache(None)
    k = cache.key("trajectory", exp, {"checkpoints": 5})
    assert k == cache.key("trajectory", exp, {"checkpoints": 5, "progress": True})
    assert k != cache.key("trajectory", exp, {"checkpoints": 6})
    assert k != cache.key("trajectory", presets.experiment("saddle", "lowrank", 2, sgd_runs=3), {"checkpoints": 5})
    assert k != cache.key("aligned", exp, {"checkpoints": 5})


def test_memory_layer_evicts_least_recently_used_beyond_its_limit(tmp_path):
    """With a disk root, memory keeps at most memory_limit bytes (LRU); evicted entries come back from disk."""
    from dlncheck.store.policy import nbytes

    exps = [
        presets.experiment("saddle", "lowrank", 2, steps=20, sgd_runs=1, init=Init("aligned", 1e-4, seed=s))
        for s in range(3)
    ]
    one = nbytes(TrajectoryCache(None)(exps[0]))
    cache = TrajectoryCache(tmp_path, memory_limit=2.5 * one)
    cache(exps[0]), cache(exps[1]), cache(exps[0]), cache(exps[2])  # exps[1] is now the least recently used
    assert set(cache._memory) == {cache.key("trajectory", e, {}) for e in (exps[0], exps[2])}
    assert sum(cache._sizes.values()) <= cache.memory_limit
    again = cache(exps[1])
    assert cache.stats == {"memory": 1, "disk": 1, "computed": 3, "memory_only": 0}
    torch.testing.assert_close(again.loss, TrajectoryCache(None)(exps[1]).loss, rtol=0, atol=0)
    assert set(cache._memory) == {cache.key("trajectory", e, {}) for e in (exps[2], exps[1])}


def test_large_ensemble_is_served_config_by_config(tmp_path, monkeypatch):
    """An ensemble over policy.LAZY_ENSEMBLE_GB of checkpoints comes back as an OnDemand sequence:
    nothing is trained until a config is read, each config is the trajectory the whole program gives
    (to round-off: one program of all configs against one per config), it is cached under the same
    key, and negative indices, slices and iteration work; below the threshold, or without a disk
    root, the ensemble is trained at once as before."""
    from dlncheck import Ensemble, train
    from dlncheck.store import policy
    from dlncheck.store.lazy import OnDemand, train_bytes

    base = presets.experiment("saddle", "lowrank", 2, steps=40, sgd_runs=2)
    ens = Ensemble(base, [Init("gaussian", 1e-2, seed=s) for s in range(3)])
    held = sum(train_bytes(ens.experiment(i), {"checkpoints": 5}, "weights at checkpoints") for i in range(len(ens)))
    whole = train(ens, checkpoints=5)
    monkeypatch.setattr(policy, "LAZY_ENSEMBLE_GB", held / 2 / 1e9)
    cache = TrajectoryCache(tmp_path)
    et = cache.ensemble(ens, checkpoints=5)
    assert isinstance(et.trajectories, OnDemand) and cache.stats["computed"] == 0
    assert len(et) == 3 and cache.stats["computed"] == 0
    for got, want in zip(et, whole):
        torch.testing.assert_close(got.loss, want.loss, rtol=1e-12, atol=0)
        for a, b in zip(got.weights, want.weights):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    assert cache.stats["computed"] == 3
    assert et[-1].experiment == ens.experiment(2) and [t.experiment for t in et[1:]] == ens.experiments[1:]
    with pytest.raises(IndexError):
        et.trajectories[3]
    assert cache(ens.experiment(1), checkpoints=5) is et[1]  # the same key as a config read alone
    eager = TrajectoryCache(None).ensemble(ens, checkpoints=5)
    assert isinstance(eager.trajectories, list)  # no disk root: memory is the only store
    monkeypatch.setattr(policy, "LAZY_ENSEMBLE_GB", 2 * held / 1e9)
    assert isinstance(TrajectoryCache(tmp_path / "b").ensemble(ens, checkpoints=5).trajectories, list)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 10**9), max_size=40), st.floats(1e-3, 2.0))
def test_training_chunks_keep_order_and_stay_within_the_chunk_bytes(sizes, limit_gb):
    """store.lazy.training_chunks: consecutive groups covering every config once, in order; a group
    holds one config or stays within TRAIN_CHUNK_GB, and is closed only when the next config would
    not fit."""
    from dlncheck.store import lazy, policy

    configs = list(range(100, 100 + len(sizes)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(policy, "TRAIN_CHUNK_GB", limit_gb)
        groups = lazy.training_chunks(configs, sizes)
    assert [c for g in groups for c in g] == configs
    size = dict(zip(configs, sizes))
    for k, group in enumerate(groups):
        held = sum(size[c] for c in group)
        assert len(group) == 1 or held <= limit_gb * 1e9
        if k + 1 < len(groups):
            assert held + size[groups[k + 1][0]] > limit_gb * 1e9


def test_an_ensemble_trained_in_chunks_is_the_one_program_result(tmp_path, monkeypatch):
    """Configs missing from the cache train in programs of at most TRAIN_CHUNK_GB: the trajectories
    equal one program's (to round-off) and keep their per-config checkpoints."""
    from dlncheck import Ensemble, train
    from dlncheck.store import policy

    base = presets.experiment("saddle", "lowrank", 2, steps=40, sgd_runs=2)
    ens = Ensemble(base, [Init("gaussian", 1e-2, seed=s) for s in range(4)])
    spec = {0: 5, 1: [0, 7, 40], 2: 3, 3: None}
    whole = train(ens, checkpoints=spec)
    monkeypatch.setattr(policy, "TRAIN_CHUNK_GB", 1e-9)  # one config per program
    chunked = TrajectoryCache(tmp_path).ensemble(ens, checkpoints=spec)
    for got, want in zip(chunked, whole):
        assert torch.equal(got.checkpoint_steps, want.checkpoint_steps)
        torch.testing.assert_close(got.loss, want.loss, rtol=1e-12, atol=0)
        for a, b in zip(got.weights, want.weights):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
