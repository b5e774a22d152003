"""Handing a large array's pages back to the OS off the GIL, before the array is dropped.

Dropping a numpy array frees its memory in its deallocator, with the GIL held: a block that
glibc mapped on its own is unmapped there, and unmapping 700 MB of touched pages (relu1_1 of a
2048 px image) took 100-150 ms, during which no other thread ran (dreamd's health checks waited
153 ms at the end of a 2048 px Evaluate; #28 acceptance 6). `madvise(MADV_DONTNEED)` through
ctypes runs with the GIL released, so the pages go back first and the unmap that follows finds
none left.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import mmap
from typing import Any

import numpy as np

__all__ = ["discard"]

_MADV_DONTNEED = 4  # Linux
_LARGE = 32 << 20  # smaller arrays free quickly enough
_CHUNK = 64 << 20  # pages per call: each call is short, whatever the array


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        return libc
    except (OSError, AttributeError):  # not Linux/glibc: arrays are freed the usual way
        return None


_LIBC = _libc()


def discard(*arrays: np.ndarray) -> None:
    """Give back the whole pages of each contiguous array of 32 MiB or more. The caller promises
    not to read them again (they read as zeros after this) and drops them next."""
    if _LIBC is None:
        return
    page = mmap.PAGESIZE
    for a in arrays:
        if not isinstance(a, np.ndarray) or a.nbytes < _LARGE or not a.flags.c_contiguous:
            continue
        start = -(-a.ctypes.data // page) * page  # inside the array only: never its neighbours' pages
        end = (a.ctypes.data + a.nbytes) // page * page
        for at in range(start, end, _CHUNK):
            _LIBC.madvise(at, min(_CHUNK, end - at), _MADV_DONTNEED)
