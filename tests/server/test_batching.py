"""Dynamic batching of onnxruntime runs (#26): concurrent compatible calls share one run, each
gets its own rows, incompatible ones do not mix; through a real server, results are unchanged."""
from __future__ import annotations

import concurrent.futures
import io
import threading
from types import SimpleNamespace

import numpy as np
from PIL import Image

from dreamrender.client import DreamClient
from dreamrender.server._batching import BatchingSession

from ..conftest import start_server


class _Session:
    """A fake session: output = image * weight, counting runs and the batch sizes it saw."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def get_inputs(self):
        return [SimpleNamespace(name="image", shape=["batch", 3]), SimpleNamespace(name="weight", shape=[1])]

    def run(self, names, feeds, options=None):
        with self.lock:
            self.batches.append(len(feeds["image"]))
        return [feeds["image"] * feeds["weight"]]


def _call(session: BatchingSession, row: float, weight: float) -> np.ndarray:
    return session.run(None, {"image": np.full((1, 3), row, np.float32), "weight": np.array([weight], np.float32)})[0]


def test_concurrent_compatible_runs_share_one_batch_and_get_their_own_rows():
    fake = _Session()
    session = BatchingSession(fake, max_batch=4, max_wait=1.0)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda r: _call(session, r, 2.0), [1.0, 2.0, 3.0, 4.0]))
    assert fake.batches == [4]  # full before the wait ran out: one run
    assert [float(o[0, 0]) for o in outs] == [2.0, 4.0, 6.0, 8.0]


def test_different_unbatched_inputs_never_share_a_run():
    fake = _Session()
    session = BatchingSession(fake, max_batch=4, max_wait=0.2)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda a: _call(session, *a), [(1.0, 2.0), (1.0, 3.0), (1.0, 2.0), (1.0, 3.0)]))
    assert sorted(fake.batches) == [2, 2]
    assert [float(o[0, 0]) for o in outs] == [2.0, 3.0, 2.0, 3.0]


def test_off_it_runs_each_call_alone():
    fake = _Session()
    session = BatchingSession(fake, max_batch=1, max_wait=1.0)
    assert float(_call(session, 1.5, 2.0)[0, 0]) == 3.0 and fake.batches == [1]


def test_presets_batched_through_a_server_match_unbatched_ones(models_dir, chelsea_bytes):
    def paint(target: str, preset: int) -> np.ndarray:
        with DreamClient(target) as c:
            return np.asarray(Image.open(io.BytesIO(c.style(chelsea_bytes, [], presets=[preset], size=64,
                                                            timeout=30))))

    plain, batched = start_server(models_dir), start_server(models_dir, ff_max_batch=4, ff_max_wait_ms=200)
    try:
        expected = [paint(plain.target, 5)] * 4
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda _: paint(batched.target, 5), range(4)))
        session = batched.server.servicer.cache.feed_forward("presets").multistyle
        assert session.runs < 4  # some of the four shared a run
        assert all(np.array_equal(a, b) for a, b in zip(got, expected))
    finally:
        plain.stop()
        batched.stop()
