"""The job store's faults (#28 D2-D4, D16, D22) against a real redis-server and real SQLite files:
renders that need no record run on, what needs the store is refused naming it, and no result is lost."""
from __future__ import annotations

import logging
import subprocess
import time

import grpc
import pytest

from dreamrender.client import DreamClient, DreamError
from dreamrender.v1 import dreamrender_pb2 as pb

from ..conftest import BIN, DATA, RedisServer, start_server

CONTENT, STYLE = (DATA / "chelsea_small.png").read_bytes(), (DATA / "starry_small.png").read_bytes()
QUICK = dict(size=64, scales=1, iterations=3, timeout=60)


def _job_id(events) -> tuple[str, list]:
    events = list(events)
    return next(e.job_id for e in events if isinstance(e, pb.Accepted)), events


def _until(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except DreamError:
            pass
        time.sleep(0.2)
    raise AssertionError("timed out")


def _no_tracebacks(caplog) -> None:
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("dreamrender")]


def test_redis_down_renders_run_and_their_results_arrive_when_it_is_back(models_dir, tmp_path, caplog):
    redis = RedisServer(tmp_path / "r1")
    srv = start_server(models_dir, job_store=redis.url, job_heartbeat=0.3)
    caplog.set_level(logging.WARNING)
    try:
        with DreamClient(srv.target) as c:
            redis.stop()
            job_id, events = _job_id(c.render_style(CONTENT, [STYLE], **QUICK))  # attached: runs without its record
            assert isinstance(events[-1], pb.Result)
            for call in (lambda: c.get_job(job_id), lambda: c.list_jobs(),
                         lambda: list(c.render_style(CONTENT, [STYLE], detach=True, **QUICK))):
                with pytest.raises(DreamError) as err:
                    call()
                assert err.value.code == grpc.StatusCode.UNAVAILABLE and "job store" in err.value.details
            redis = RedisServer(tmp_path / "r2", port=redis.port)  # back, empty
            job = _until(lambda: c.get_job(job_id))  # the upkeep writes the finished job's record
            assert job.state == pb.JOB_STATE_SUCCEEDED and job.kind == "RenderStyle" and job.result.image.data
        _no_tracebacks(caplog)
    finally:
        srv.stop()
        redis.stop()


def test_redis_full_refuses_detaching_and_runs_attached_renders(models_dir, tmp_path):
    redis = RedisServer(tmp_path, "--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
    srv = start_server(models_dir, job_store=redis.url)
    try:
        import redis as redis_py

        r = redis_py.Redis(port=redis.port)
        with pytest.raises(redis_py.exceptions.OutOfMemoryError):
            for i in range(10_000):  # fill it to its maxmemory
                r.set(f"filler:{i}", b"x" * 10_000)
        with DreamClient(srv.target) as c:
            for _ in range(4):
                assert c.style(CONTENT, [STYLE], **QUICK).startswith(b"\x89PNG")
            with pytest.raises(DreamError) as err:
                list(c.render_style(CONTENT, [STYLE], detach=True, **QUICK))
            assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "job store" in err.value.details
    finally:
        srv.stop()
        redis.stop()


def test_a_redis_restarted_empty_mid_job_gets_the_whole_record_back(models_dir, tmp_path):
    redis = RedisServer(tmp_path / "r1")
    srv = start_server(models_dir, job_store=redis.url, job_heartbeat=0.3)
    try:
        with DreamClient(srv.target) as c:
            events = c.render_style(CONTENT, [STYLE], size=96, scales=1, iterations=300, detach=True, timeout=120)
            job_id = next(e.job_id for e in events if isinstance(e, pb.Accepted))
            next(e for e in events if isinstance(e, pb.Progress))
            redis.stop()
            redis = RedisServer(tmp_path / "r2", port=redis.port)
            assert isinstance(list(events)[-1], pb.Result)
            job = _until(lambda: c.get_job(job_id))
            assert job.state == pb.JOB_STATE_SUCCEEDED and job.kind == "RenderStyle" and job.detached
            assert c.get_job(job_id).result.image.data.startswith(b"\x89PNG")
    finally:
        srv.stop()
        redis.stop()


@pytest.mark.parametrize("spoil", ["garbage", "directory", "truncated"])
def test_an_unusable_sqlite_file_is_one_line_at_start(tmp_path, spoil):
    data = tmp_path / "data"
    data.mkdir()
    path = data / "jobs.sqlite3"
    if spoil == "directory":
        path.mkdir()
    elif spoil == "garbage":
        path.write_bytes(bytes(range(256)) * 64)
    else:
        path.write_bytes(b"SQLite format 3\x00" + b"\x10\x00")
    r = subprocess.run([str(BIN / "dreamd"), "--listen", "127.0.0.1:0", "--data-dir", str(data), "--models-dir",
                        str(tmp_path / "models")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "move it aside" in lines[0], r.stderr


def test_a_sqlite_file_spoiled_under_a_running_server(models_dir, tmp_path, caplog):
    """D5: with the pages after the first overwritten by garbage, every render, ListJobs and GetJob
    got INTERNAL "DatabaseError" and the upkeep logged a traceback every heartbeat. Attached renders
    now run on, the calls that need the store get UNAVAILABLE naming the file and what to do."""
    import contextlib
    import os
    import sqlite3

    data = tmp_path / "data"
    srv = start_server(models_dir, data_dir=str(data), job_heartbeat=0.3)
    caplog.set_level(logging.WARNING)
    try:
        with DreamClient(srv.target) as c:
            done = [_job_id(c.render_style(CONTENT, [STYLE], **QUICK))[0] for _ in range(3)]
            path = data / "jobs.sqlite3"
            with contextlib.closing(sqlite3.connect(path)) as db:  # the pages into the file, not the WAL
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            size = path.stat().st_size
            assert size > 4096
            with open(path, "r+b") as spoil:  # every page after the first
                spoil.seek(4096)
                spoil.write(os.urandom(size - 4096))
            job_id, events = _job_id(c.render_style(CONTENT, [STYLE], **QUICK))
            assert isinstance(events[-1], pb.Result)  # attached: the render never needed the store
            outcomes = []
            for call in (lambda: c.get_job(done[0]), lambda: c.list_jobs(), lambda: c.get_job(job_id)):
                try:
                    call()
                    outcomes.append("OK")
                except DreamError as err:
                    assert err.code == grpc.StatusCode.UNAVAILABLE, err
                    assert str(path) in err.details and "move the file aside" in err.details
                    outcomes.append(err.code.name)
            assert "UNAVAILABLE" in outcomes, outcomes  # the spoiled pages were read, and said so
            time.sleep(1.0)  # a few heartbeats of the upkeep over the spoiled file
        _no_tracebacks(caplog)
    finally:
        srv.stop()
