"""Admission control knows memory (#17): a job whose estimated peak is over --max-job-memory is
refused with RESOURCE_EXHAUSTED naming both figures, before any work."""
from __future__ import annotations

import re

import grpc
import pytest

from dreamrender.client import DreamClient, DreamError
from dreamrender.server.engine.sizing import lbfgs_pairs, style_memory
from dreamrender.settings import StyleSettings
from dreamrender.v1 import dreamrender_pb2 as pb

from ..conftest import DATA, start_server


@pytest.fixture(scope="module")
def small_server(models_dir):
    srv = start_server(models_dir, max_job_memory=700)
    yield srv
    srv.stop()


def _refused(call) -> DreamError:
    with pytest.raises(DreamError) as err:
        call()
    return err.value


@pytest.mark.parametrize("kind", ["style", "dream"])
def test_a_job_over_the_memory_limit_is_refused_before_any_work(small_server, chelsea_bytes, kind):
    with DreamClient(small_server.target) as c:
        if kind == "style":
            events = []
            err = _refused(lambda: events.extend(c.render_style(chelsea_bytes, [DATA / "starry_small.png"], size=1024,
                                                                timeout=30)))
        else:
            events = []
            err = _refused(lambda: events.extend(c.render_dream(noise=(1024, 1024), tile_size=1024, timeout=30)))
    assert events == []  # not even Accepted: refused before the job exists
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.violations[0][0] == "size"
    found = re.search(r"about ([0-9,]+) MB.*--max-job-memory of ([0-9,]+) MB", err.details)
    need, limit = (int(x.replace(",", "")) for x in found.groups())
    assert limit == 700 and need > limit, err.details
    assert small_server.scheduler.active == 0 and small_server.scheduler.queue_depth == 0


def test_a_job_within_the_limit_runs(small_server, chelsea_bytes):
    with DreamClient(small_server.target) as c:
        png = c.style(chelsea_bytes, [DATA / "starry_small.png"], size=64, scales=1, iterations=2, timeout=60)
    assert png.startswith(b"\x89PNG")


def test_the_estimate_grows_with_size_and_shrinks_with_tiles_and_adam():
    s = StyleSettings()
    small, large = style_memory([(341, 512)], s, evaluator=True), style_memory([(1365, 2048)], s, evaluator=True)
    assert large > 1.5 * small  # tiles bound the activations; the image-sized tensors still grow
    untiled = style_memory([(1365, 2048)], StyleSettings(tile_size=4096), evaluator=True)
    assert untiled > large  # auto tiles at 2048
    adam = style_memory([(1365, 2048)], StyleSettings(optimizer="adam"), evaluator=True)
    assert adam < large


def test_lbfgs_history_adapts_to_its_budget():
    s = StyleSettings()
    assert lbfgs_pairs(s, 341 * 512) == 50  # 200 MiB / (24 B x 174,592 px)
    assert lbfgs_pairs(s, 1365 * 2048) == 5  # never below MIN_LBFGS_PAIRS
    assert lbfgs_pairs(StyleSettings(lbfgs_history=20), 341 * 512) == 20  # asked for fewer: as asked
    assert lbfgs_pairs(StyleSettings(lbfgs_history=3), 1365 * 2048) == 3


def test_a_tiled_render_through_the_server(server, chelsea_bytes):
    # tile_size over the wire, with two styles, colour preservation, Adam and two scales.
    with DreamClient(server.target) as c:
        events = list(c.render_style(chelsea_bytes, [DATA / "starry_small.png", DATA / "scream_small.png"],
                                     style_weights=[0.7, 0.3], size=160, scales=2, iterations=3, tile_size=32,
                                     optimizer="adam", preserve_colors=True, preview={"every": 2}, timeout=120))
    result = events[-1]
    assert isinstance(result, pb.Result) and (result.stats.width, result.stats.height) == (160, 107)
    progress = [e for e in events if isinstance(e, pb.Progress)]
    assert progress[-1].step == 6 and progress[-1].stage_count == 2 and progress[-1].values["total"] > 0


def test_large_blocks_of_a_large_short_job_go_back_when_freed():
    """#28: under keep_heap a freed 2 GB painting stayed in the heap until one malloc_trim handed it
    back under glibc's arena lock (health waited 107-342 ms). Inside large_blocks_mapped a large
    block is its own mapping, returned at free; outside, the heap keeps it for reuse. In a fresh
    process: glibc serves a request from free heap space first, whatever its size, and the test
    process's heap holds the free space of every test before this one."""
    import subprocess
    import sys

    script = """
import numpy as np
from dreamrender.server.memory import keep_heap, large_blocks_mapped, release_memory

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

def kept_after_free():
    release_memory()
    before = rss()
    block = np.ones(96 << 20, np.uint8)  # 96 MiB, touched
    del block
    return rss() - before

assert keep_heap()  # glibc, as on every machine dreamd is deployed to
with large_blocks_mapped():
    mapped = kept_after_free()
heap = kept_after_free()
print(mapped, heap)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    mapped, heap = map(float, out.stdout.split())
    assert mapped < 16, mapped
    assert heap > 80, heap
