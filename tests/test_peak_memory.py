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
