"""A case's peak resident memory (dlncheck.report.peak_memory) against a known allocation."""

import sys

import numpy as np
import pytest

from dlncheck.report import peak_memory

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM and clear_refs are Linux's")


@linux
def test_the_peak_sees_an_allocation_and_the_reset_forgets_it():
    assert peak_memory.reset()
    before = peak_memory.peak_gb()
    block = np.ones(400 * 2**20 // 8)  # 400 MiB, touched
    seen = peak_memory.peak_gb()
    del block
    assert peak_memory.reset()
    after = peak_memory.peak_gb()
    assert before is not None and seen is not None and after is not None
    assert seen - before >= 0.95 * 400 * 2**20 / 1e9
    assert after < seen - 0.9 * 400 * 2**20 / 1e9  # freed, and the reset dropped the old peak


def test_no_proc_gives_none_and_false(monkeypatch, tmp_path):
    monkeypatch.setattr(peak_memory, "_STATUS", tmp_path / "absent")
    monkeypatch.setattr(peak_memory, "_CLEAR", tmp_path / "no" / "such")
    assert peak_memory.peak_gb() is None and peak_memory.reset() is False


@linux
def test_freed_blocks_below_the_heap_top_go_back_to_the_kernel():
    """200 MB of 64 kB blocks (below glibc's mmap threshold: they live in the heap), freed while a
    block allocated after them pins the heap's top: without malloc_trim they stay resident."""
    base = peak_memory.resident_gb()
    blocks = [bytearray(64 * 1024) for _ in range(3200)]  # 210 MB, touched (zeroed)
    pin = bytearray(64 * 1024)
    held = peak_memory.resident_gb()
    del blocks
    assert peak_memory.return_free_heap()
    after = peak_memory.resident_gb()
    assert base is not None and held is not None and after is not None and pin
    assert held - base > 0.19 and after < held - 0.15, (base, held, after)


def test_without_glibc_the_heap_is_left_alone(monkeypatch):
    monkeypatch.setattr(peak_memory, "_MALLOC_TRIM", None)
    assert peak_memory.return_free_heap() is False


_RAISED_THRESHOLD = """
import sys
import numpy as np
from dlncheck.report import peak_memory
if sys.argv[1] == "pinned":
    assert peak_memory.pin_mmap_threshold()
big = np.ones(16 * 2**20 // 8)
del big  # glibc now serves blocks below 16 MB from the heap, unless the threshold is pinned
base = peak_memory.resident_gb()
blocks = [np.ones(8 * 2**20 // 8) for _ in range(30)]  # 252 MB of 8 MiB blocks, touched
pin = np.ones(2**20 // 8)  # 1 MiB from the heap, above the blocks: the top cannot shrink
held = peak_memory.resident_gb()
del blocks
print(held - base, peak_memory.resident_gb() - base)
"""


@linux
def test_a_pinned_mmap_threshold_returns_large_freed_blocks_at_once():
    """After a 16 MiB block is freed, glibc serves 8 MiB blocks from the heap, where they stay resident
    once freed (no trim); with peak_memory.pin_mmap_threshold (4 MiB) they are mmapped and go back to
    the kernel when freed. Each run in its own process: the setting is the process's."""
    import subprocess

    def run(mode: str) -> tuple[float, float]:
        out = subprocess.run(
            [sys.executable, "-c", _RAISED_THRESHOLD, mode], capture_output=True, text=True, check=True
        )
        held, after = map(float, out.stdout.split())
        return held, after

    held, after = run("default")
    assert held > 0.24 and after > 0.2, (held, after)  # freed, still resident
    held, after = run("pinned")
    assert held > 0.24 and after < 0.05, (held, after)


def test_without_glibc_the_threshold_is_left_alone(monkeypatch):
    monkeypatch.setattr(peak_memory, "_MALLOPT", None)
    assert peak_memory.pin_mmap_threshold() is False
