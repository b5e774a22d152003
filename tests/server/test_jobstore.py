"""Both job stores through the same interface: SQLite in a data directory, Redis on a real redis-server."""
from __future__ import annotations

import time

import pytest

from dreamrender.server.jobs import (CANCELLED, INTERRUPTED, QUEUED, RUNNING, SUCCEEDED, JobRecord, StoreFullError,
                                     open_store)


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        s = open_store(server.url, data_dir=str(tmp_path), ttl=3600, max_bytes=50_000)
    else:
        s = open_store("sqlite", data_dir=str(tmp_path / "data"), ttl=3600, max_bytes=50_000)
    yield s
    s.close()


def test_create_get_update_find(store):
    store.create(JobRecord("a" * 16, "RenderStyle", owner="o1", request=b"req", request_id="r1", detached=True,
                           server_id="s1"), capped=True)
    rec = store.get("a" * 16)
    assert rec is not None and rec.state == QUEUED and rec.request == b"req" and rec.detached and rec.version == 0
    store.update("a" * 16, state=RUNNING, progress=b"p1", checkpoint=b"\x89PNG")
    rec = store.get("a" * 16)
    assert (rec.state, rec.progress, rec.checkpoint, rec.version) == (RUNNING, b"p1", b"\x89PNG", 1)
    assert store.find("o1", "r1").id == "a" * 16
    assert store.find("o2", "r1") is None and store.find("o1", "r2") is None
    assert store.get("b" * 16) is None


def test_list_newest_first_by_owner_and_state(store):
    for i, (owner, state) in enumerate([("o1", SUCCEEDED), ("o2", SUCCEEDED), ("o1", RUNNING), ("o1", SUCCEEDED)]):
        store.create(JobRecord(f"{i:016x}", "RenderDream", owner=owner, created=1000 + i, result=b"x" * 10),
                     capped=False)
        store.update(f"{i:016x}", state=state)
    assert [r.id[-1] for r in store.list("o1", None, 0, 10)] == ["3", "2", "0"]
    assert [r.id[-1] for r in store.list("o1", SUCCEEDED, 0, 10)] == ["3", "0"]
    assert [r.id[-1] for r in store.list("o1", None, 1, 1)] == ["2"]
    assert [r.id[-1] for r in store.list(None, None, 0, 10)] == ["3", "2", "1", "0"]
    assert store.list("o1", None, 0, 10)[0].result == b""  # listed without the large bytes


def test_unfinished_jobs_and_claims(store):
    for i, (server, state) in enumerate([("s1", QUEUED), ("s1", RUNNING), ("s2", RUNNING), ("s1", INTERRUPTED),
                                         ("s1", CANCELLED)]):
        store.create(JobRecord(f"{i:016x}", "RenderStyle", server_id=server, created=1000 + i), capped=False)
        store.update(f"{i:016x}", state=state)
    assert [r.id[-1] for r in store.unfinished()] == ["0", "1", "2", "3"]
    assert store.claim("0" * 16, "s1", "s3") and store.get("0" * 16).server_id == "s3"
    assert not store.claim("0" * 16, "s1", "s4")  # s3 holds it now
    store.beat("s3", 5)
    assert store.alive("s3")


def test_size_cap_refuses_new_capped_jobs_and_keeps_finished_ones(store):
    store.create(JobRecord("1" * 16, "RenderStyle", request=b"x" * 30_000), capped=True)
    store.update("1" * 16, state=SUCCEEDED, result=b"r" * 15_000)
    with pytest.raises(StoreFullError, match="job store is full"):
        store.create(JobRecord("2" * 16, "RenderStyle", request=b"x" * 10_000), capped=True)
    store.create(JobRecord("3" * 16, "RenderStyle"), capped=False)  # an attached job is still served
    assert store.get("1" * 16).result == b"r" * 15_000  # nothing was dropped to make room


def test_expire_drops_only_finished_records_past_the_ttl(tmp_path):
    s = open_store("sqlite", data_dir=str(tmp_path), ttl=0.2, max_bytes=0)
    s.create(JobRecord("1" * 16, "RenderStyle"), capped=False)
    s.update("1" * 16, state=SUCCEEDED)
    s.create(JobRecord("2" * 16, "RenderStyle"), capped=False)
    s.update("2" * 16, state=RUNNING)
    assert s.expire() == 0
    time.sleep(0.3)
    assert s.expire() == 1
    assert s.get("1" * 16) is None and s.get("2" * 16).state == RUNNING


def test_a_bad_store_url_names_the_flag(tmp_path):
    with pytest.raises(ValueError, match="--job-store"):
        open_store("mysql://x", data_dir=str(tmp_path), ttl=1, max_bytes=0)


def test_peek_reads_version_state_and_cancel_flag(store):
    store.create(JobRecord("c" * 16, "RenderStyle", result=b"big" * 100), capped=False)
    assert store.peek("c" * 16) == (0, QUEUED, False)
    store.update("c" * 16, state=RUNNING, cancel_requested=True)
    assert store.peek("c" * 16) == (1, RUNNING, True)
    assert store.peek("d" * 16) is None


def test_record_size_follows_every_update(store):
    """The size the cap adds up follows each update, whether it grows or shrinks the record."""
    store.create(JobRecord("e" * 16, "RenderStyle", request=b"x" * 1000), capped=True)
    store.update("e" * 16, result=b"r" * 40_000, progress=b"p" * 10)
    with pytest.raises(StoreFullError):  # 41 KB used + 10 KB > the 50 KB cap
        store.create(JobRecord("f" * 16, "RenderStyle", request=b"x" * 10_000), capped=True)
    store.update("e" * 16, result=b"", frame=b"f" * 300, error_message="bad")
    store.create(JobRecord("f" * 16, "RenderStyle", request=b"x" * 10_000), capped=True)  # 1.3 KB + 10 KB fits
    got = store.get("e" * 16)
    assert (got.result, got.frame, got.error_message) == (b"", b"f" * 300, "bad")
    with pytest.raises(StoreFullError):  # 11.3 KB used + 39 KB > 50 KB: the sizes are not undercounted either
        store.create(JobRecord("g" * 16, "RenderStyle", request=b"x" * 39_000), capped=True)
