"""client/_pages.discard: a large array's pages go back to the OS before it is dropped."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from dreamrender.client._pages import discard

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise(MADV_DONTNEED) is Linux's")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def test_a_large_arrays_pages_go_back_and_small_ones_are_left():
    big = np.ones((64, 512, 1024), np.float32)  # 128 MiB, touched
    small = np.ones(1000, np.float32)
    before = _rss_mb()
    discard(big, small, "not an array")
    assert before - _rss_mb() > 100  # given back while the array still exists
    assert not big[:, 1:-1].any()  # its whole pages read as zeros now: the caller promised to drop it
    assert small.all()
