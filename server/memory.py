"""glibc heap settings for rendering, and handing memory back between jobs.

A render allocates and frees the same large tensors (activations, gradients) every iteration.
By default glibc serves blocks over its mmap threshold with fresh mmaps and gives freed heap
top back to the OS, so each iteration page-faults its working set in again: measured 15-20% of
a VGG16 forward+backward at 512 px on 2 cores (`python bench/bench_style.py`, `--malloc default`
against `--malloc keep`). `keep_heap()` makes glibc keep freed memory for reuse within a job;
`release_memory()` (between jobs) hands it back, so an idle server's RSS still falls.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import threading
from typing import Any, Iterator

__all__ = ["keep_heap", "large_blocks_mapped", "release_memory", "trim_heap", "freeze_startup_objects", "thaw_startup_objects", "machine_memory"]

log = logging.getLogger(__name__)

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_MAPPED_FROM = 32 << 20  # glibc's largest mmap threshold (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)

_kept = False  # keep_heap's settings are in force
_mapping = 0  # large_blocks_mapped contexts open now
_mapping_lock = threading.Lock()


def _load_libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:  # not glibc (macOS, musl): nothing to tune or trim
        return None


_LIBC = _load_libc()


def keep_heap() -> bool:
    """Serve every allocation from the heap (no per-block mmap), never trim it on free, and keep
    one heap for all threads.

    One arena: glibc gives each thread that allocates its own, and with nothing trimmed each
    arena keeps its own high-water mark, so the evaluator's scoring thread and the render's
    worker each held a few hundred MB that the other could not reuse (bench/bench_memory.py, 512
    px: L-BFGS 1485 -> 1173 MiB, Adam 1253 -> 913 MiB peak). Returns False where this is not
    glibc. Process-wide; call once, at startup, before the threads that render exist.
    """
    if _LIBC is None:
        return False
    ok = (_LIBC.mallopt(_M_MMAP_MAX, 0) == 1 and _LIBC.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
          and _LIBC.mallopt(_M_ARENA_MAX, 1) == 1)
    if not ok:
        log.warning("mallopt refused the heap settings; renders will page-fault more")
    global _kept
    _kept = ok
    return ok


@contextlib.contextmanager
def large_blocks_mapped() -> Iterator[None]:
    """While a large short job (a painting or an Evaluate over ~250k px) runs, blocks of 32 MiB or
    more come from their own mmap, so they go back to the OS the moment they are freed.

    Why: under `keep_heap` they would stay in the heap until `release_memory`, and its
    malloc_trim hands back gigabytes while holding glibc's one arena lock: every thread's malloc,
    the health check's included, waited 107-342 ms after a 2048 px painting or Evaluate
    (bench/bench_hostile_health.py). With them mapped, the trim after the job has only the small
    blocks left to hand back (two 2048 px presets: health at most 17-23 ms, RSS left +132 MB).
    Long renders keep the heap (their per-step page faults are what keep_heap saves); a render
    running beside such a job maps its large blocks meanwhile. Limit: glibc maps only what its
    heap cannot serve, so a block that fits free heap space (say, left by a long render before)
    comes from the heap, and the trim after the job is long again."""
    global _mapping
    if not _kept:
        yield
        return
    with _mapping_lock:
        if _mapping == 0:
            _LIBC.mallopt(_M_MMAP_THRESHOLD, _MAPPED_FROM)
            _LIBC.mallopt(_M_MMAP_MAX, 1 << 16)
        _mapping += 1
    try:
        yield
    finally:
        with _mapping_lock:
            _mapping -= 1
            if _mapping == 0:
                _LIBC.mallopt(_M_MMAP_MAX, 0)


def freeze_startup_objects() -> None:
    """Collect once, then move every object alive now (modules, torch, grpc, protobuf: about 180k)
    out of the cyclic GC's reach, so `release_memory`'s collection between jobs scans only what
    jobs made. A full collection over the start-up objects holds the GIL (and so every other
    thread, the health check's included) for 81-84 ms here; after the freeze it takes 0.002 ms.
    (bench/bench_health_latency.py does not see this: it stops polling before the job's clean-up;
    its 92-99 ms worst came from probing PNGs, see codec._orientation.) Process-wide; call once
    the server is built."""
    gc.collect()
    gc.freeze()


def thaw_startup_objects() -> None:
    """Undo `freeze_startup_objects` when a server closes: what it froze may be garbage now (a
    process that builds many servers, as the tests do, would otherwise keep each one's cycles)."""
    gc.unfreeze()


def release_memory() -> None:
    """Between jobs: collect reference cycles (a job's tensors otherwise wait for the cyclic GC)
    and hand freed heap back to the OS (with `keep_heap` glibc would keep it), so RSS stays flat."""
    gc.collect()
    trim_heap()


def trim_heap() -> None:
    """Hand the heap's free pages back to the OS now (during a job, where `keep_heap` keeps them)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def machine_memory() -> int:
    """Bytes of memory this process may use: the machine's, or its container's (cgroup v2 or v1)
    limit when that is lower."""
    total = 0
    try:
        with open("/proc/meminfo") as f:
            total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError):
        total = 8 << 30  # not Linux: assume a modest machine
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total
