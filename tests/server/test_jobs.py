"""Jobs that outlive their call (#12), each through real processes: dreamd, dreamctl, SDK clients
in their own processes, and a real redis-server."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import grpc
import pytest

from dreamrender.client import DreamClient, DreamError
from dreamrender.v1 import dreamrender_pb2 as pb

from ..conftest import DATA, Dreamd

CONTENT, STYLE = str(DATA / "chelsea_small.png"), str(DATA / "starry_small.png")
# A style job of the tiny network that runs for a few seconds on 2 cores (10-40 ms a step), long
# enough to be killed or stopped mid-way, with a checkpoint (the best image so far) every 10 steps.
LONG_STEPS = 250
LONG = ["--size", "96", "--scales", "1", "--iterations", str(LONG_STEPS)]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One dreamd for the tests that need no fresh one (each costs 1.5 s to start)."""
    d = Dreamd(tmp_path_factory.mktemp("shared-dreamd"))
    yield d
    d.stop()


def _wait_for(predicate, timeout: float = 60, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def _step(d: Dreamd, job_id: str) -> int:
    with DreamClient(d.target) as c:
        return c.get_job(job_id, timeout=10).progress.step


def _done(d: Dreamd, job_id: str) -> bool:
    with DreamClient(d.target) as c:
        return c.get_job(job_id, timeout=10).done


def test_a_detached_render_outlives_its_killed_client(tmp_path):
    d = Dreamd(tmp_path)
    try:
        # The client, in its own process, starts a detached job, reports its id, then is killed mid-stream.
        client = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            from dreamrender.client import DreamClient
            from dreamrender.v1 import dreamrender_pb2 as pb
            with DreamClient({d.target!r}) as c:
                for ev in c.render_style({CONTENT!r}, [{STYLE!r}], size=96, scales=1, iterations={LONG_STEPS}, detach=True):
                    if isinstance(ev, pb.Accepted):
                        print(ev.job_id, flush=True)
            """)], stdout=subprocess.PIPE, text=True)
        job_id = client.stdout.readline().strip()
        _wait_for(lambda: _step(d, job_id) > 20)
        client.kill()
        client.wait(10)
        at_kill = _step(d, job_id)
        r = d.ctl("jobs", "watch", job_id, "-o", str(tmp_path / "out.png"), "--frames", str(tmp_path / "frames"))
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "out.png").read_bytes().startswith(b"\x89PNG")
        assert f"{LONG_STEPS} steps" in r.stdout and f"step {LONG_STEPS}/{LONG_STEPS}" in r.stderr  # to the end
        assert list((tmp_path / "frames").iterdir())
        with DreamClient(d.target) as c:
            job = c.get_job(job_id)
        assert job.state == pb.JOB_STATE_SUCCEEDED and job.done and job.detached and at_kill < LONG_STEPS
    finally:
        d.stop()


def test_without_detach_a_disconnect_still_cancels(shared):
    with DreamClient(shared.target) as c:
        for ev in c.render_style(CONTENT, [STYLE], size=96, scales=1, iterations=LONG_STEPS, timeout=60):
            if isinstance(ev, pb.Accepted):
                accepted = ev.job_id
            if isinstance(ev, pb.Progress):
                break  # the caller goes away mid-render
    with DreamClient(shared.target) as c:
        job = _wait_for(lambda: (j := c.get_job(accepted)).done and j)
    assert job.state == pb.JOB_STATE_CANCELLED and job.error.code == "CANCELLED"


def test_a_restart_keeps_results_and_resumes_an_interrupted_job(tmp_path):
    d = Dreamd(tmp_path, "--grace", "0.5")
    done_id = d.ctl("style", CONTENT, STYLE, "--size", "64", "--scales", "1", "--iterations", "20",
                    "--detach").stdout.strip()
    _wait_for(lambda: _done(d, done_id))
    long_id = d.ctl("style", CONTENT, STYLE, *LONG, "--detach").stdout.strip()
    # An SDK stream of a third job that asked to re-attach: it must end with its result anyway.
    outcome: dict = {}

    def follow() -> None:
        try:
            with DreamClient(d.target) as c:
                for ev in c.render_style(CONTENT, [STYLE], size=96, scales=1, iterations=100, detach=True,
                                         request_id="follow-1", reattach=True, timeout=300):
                    if isinstance(ev, pb.Result):
                        outcome["result"] = ev
        except DreamError as err:
            outcome["error"] = err

    def attached() -> None:  # a plain call, neither detached nor re-attaching: told which job stopped
        try:
            with DreamClient(d.target) as c:
                for ev in c.render_style(CONTENT, [STYLE], size=96, scales=1, iterations=100, timeout=300):
                    if isinstance(ev, pb.Accepted):
                        outcome["attached_id"] = ev.job_id
        except DreamError as err:
            outcome["attached_error"] = err

    follower, plain = threading.Thread(target=follow), threading.Thread(target=attached)
    follower.start()
    plain.start()
    _wait_for(lambda: _step(d, long_id) > 50)
    assert d.stop(signal.SIGTERM) == 0
    assert "grace period over" in d.log()
    plain.join(30)
    err = outcome["attached_error"]
    assert err.code == grpc.StatusCode.UNAVAILABLE and f"job {outcome['attached_id']} was stopped" in err.details

    d2 = Dreamd(tmp_path, "--grace", "0.5", data_dir=d.data_dir, listen=d.target)  # the same directory and address
    try:
        r = d2.ctl("jobs", "get", done_id, "-o", str(tmp_path / "done.png"))
        assert r.returncode == 0 and "succeeded" in r.stdout and "(its result)" in r.stdout, r.stderr
        r = d2.ctl("jobs", "get", long_id, "-o", str(tmp_path / "partial.png"))
        assert r.returncode == 0 and "(its best image so far)" in r.stdout, r.stdout + r.stderr
        assert (tmp_path / "partial.png").read_bytes().startswith(b"\x89PNG")
        r = d2.ctl("jobs", "watch", long_id, "-o", str(tmp_path / "final.png"), timeout=180)
        assert r.returncode == 0, r.stderr
        with DreamClient(d2.target) as c:
            job = c.get_job(long_id)
        assert job.state == pb.JOB_STATE_SUCCEEDED and job.resumed == 1
        assert f"job {long_id} RenderStyle resumed (from its checkpoint)" in d2.log()
        follower.join(180)
        assert "result" in outcome, outcome
    finally:
        d2.stop()


def test_after_a_sigkill_a_detached_job_resumes_from_its_last_checkpoint(tmp_path):
    d = Dreamd(tmp_path, "--job-heartbeat", "0.5")
    job_id = d.ctl("style", CONTENT, STYLE, *LONG, "--detach").stdout.strip()
    _wait_for(lambda: _step(d, job_id) > 50)
    d.stop(signal.SIGKILL)
    d2 = Dreamd(tmp_path, "--job-heartbeat", "0.5", data_dir=d.data_dir)
    try:
        # The killed server's heartbeat lapses after 1.5 s; then the new one takes its job over.
        r = d2.ctl("jobs", "watch", job_id, "-o", str(tmp_path / "final.png"), timeout=180)
        assert r.returncode == 0, r.stderr
        assert f"job {job_id} RenderStyle resumed (from its checkpoint)" in d2.log()
    finally:
        d2.stop()


def test_the_same_request_id_gives_one_job_and_one_render(tmp_path):
    d = Dreamd(tmp_path)
    try:
        ids = []
        for _ in range(2):  # two connections, as a retrying backend would make
            with DreamClient(d.target) as c:
                events = c.render_style(CONTENT, [STYLE], size=64, scales=1, iterations=200, request_id="order-42",
                                        detach=True, timeout=60)
                ids.append(next(ev.job_id for ev in events if isinstance(ev, pb.Accepted)))
        assert ids[0] == ids[1]
        r = d.ctl("style", CONTENT, STYLE, "--size", "64", "--scales", "1", "--iterations", "200",
                  "--request-id", "order-42", "-o", str(tmp_path / "o.png"))
        assert r.returncode == 0 and f"accepted job {ids[0]}" in r.stderr, r.stderr
        with DreamClient(d.target) as c:
            assert [j.job_id for j in c.list_jobs().jobs] == [ids[0]]
        assert d.log().count("RenderStyle accepted at queue position") == 1
    finally:
        d.stop()


def test_a_job_on_replica_a_is_watched_to_completion_on_replica_b(tmp_path, redis_server):
    a, b = Dreamd.many([((tmp_path / name, "--job-store", redis_server.url, "--server-id", f"replica-{name}"), {})
                        for name in ("a", "b")])
    try:
        job_id = a.ctl("style", CONTENT, STYLE, *LONG, "--detach").stdout.strip()
        r = b.ctl("jobs", "watch", job_id, "-o", str(tmp_path / "out.png"), timeout=180)
        assert r.returncode == 0, r.stderr
        assert f"step {LONG_STEPS}/{LONG_STEPS}" in r.stderr and (tmp_path / "out.png").read_bytes().startswith(b"\x89PNG")
        with DreamClient(b.target) as c:
            job = c.get_job(job_id)
        assert job.server_id == "replica-a" and job.state == pb.JOB_STATE_SUCCEEDED
        assert "accepted" not in b.log()  # B ran nothing
    finally:
        a.stop()
        b.stop()


def test_another_tokens_job_is_not_found(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("alice-secret-token\nbob-secret-token\n")
    d = Dreamd(tmp_path, "--auth-token-file", str(tokens))
    try:
        with DreamClient(d.target, token="alice-secret-token") as alice:
            job_id = next(ev.job_id for ev in alice.render_style(CONTENT, [STYLE], size=64, scales=1, iterations=5,
                                                                 detach=True) if isinstance(ev, pb.Accepted))
            assert alice.get_job(job_id).job_id == job_id
        with DreamClient(d.target, token="bob-secret-token") as bob:
            for call in (bob.get_job, bob.cancel_job):
                with pytest.raises(DreamError) as err:
                    call(job_id)
                assert err.value.code == grpc.StatusCode.NOT_FOUND
            assert list(bob.list_jobs().jobs) == []
            with pytest.raises(DreamError) as err:
                list(bob.watch_job(job_id))
            assert err.value.code == grpc.StatusCode.NOT_FOUND
        assert "alice-secret-token" not in d.log() and "bob-secret-token" not in d.log()
    finally:
        d.stop()


def test_bad_ids_name_the_field_and_unknown_ones_are_not_found(shared):
    for args, code, field in ((["jobs", "get", "not-an-id"], "INVALID_ARGUMENT", "[job_id]"),
                              (["jobs", "watch", "0123456789ABCDEF"], "INVALID_ARGUMENT", "[job_id]"),
                              (["jobs", "cancel", "0123456789abcdef"], "NOT_FOUND", ""),
                              (["jobs", "get", "0123456789abcdef"], "NOT_FOUND", ""),
                              (["jobs", "list", "--page-token", "x"], "INVALID_ARGUMENT", "[page_token]"),
                              (["style", CONTENT, STYLE, "--request-id", "has space", "-o", "x.png"],
                               "INVALID_ARGUMENT", "[request_id]")):
        r = shared.ctl(*args)
        assert r.returncode == 1 and r.stderr.startswith(f"dreamctl: {code}{' ' + field if field else ''}"), \
            (args, r.stderr)


def test_cancel_job_stops_a_running_detached_job(shared, tmp_path):
    d = shared
    job_id = d.ctl("style", CONTENT, STYLE, *LONG, "--detach").stdout.strip()
    _wait_for(lambda: _step(d, job_id) > 10)
    r = d.ctl("jobs", "cancel", job_id)
    assert r.returncode == 0 and "cancelled" in r.stdout, r.stdout + r.stderr
    r = d.ctl("jobs", "watch", job_id, "-o", str(tmp_path / "x.png"))
    assert r.returncode == 1 and r.stderr.splitlines()[-1].startswith("dreamctl: CANCELLED"), r.stderr
    assert "cancelled by CancelJob" in r.stderr


def test_a_full_store_refuses_detached_jobs_and_keeps_finished_results(tmp_path):
    d = Dreamd(tmp_path, "--job-store-max-mb", "1")
    try:
        # Noise dreams of 640x640 give PNG results of about 0.6 MiB each (noise hardly compresses).
        ids = []
        for _ in range(2):
            r = d.ctl("dream", "--noise", "640x640", "--octaves", "1", "--steps", "1", "--detach")
            assert r.returncode == 0, r.stderr
            ids.append(r.stdout.strip())
            r = d.ctl("jobs", "watch", ids[-1], "-o", str(tmp_path / f"{len(ids)}.png"))
            assert r.returncode == 0, r.stderr
        r = d.ctl("dream", "--noise", "64x64", "--octaves", "1", "--steps", "1", "--detach")
        assert r.returncode == 1 and r.stderr.startswith("dreamctl: RESOURCE_EXHAUSTED") and "job store is full" in r.stderr
        r = d.ctl("dream", "--noise", "64x64", "--octaves", "1", "--steps", "1", "-o", str(tmp_path / "a.png"))
        assert r.returncode == 0, r.stderr  # a job that lives with its call is still served
        for n, job_id in enumerate(ids, 1):
            r = d.ctl("jobs", "get", job_id, "-o", str(tmp_path / f"again{n}.png"))
            assert r.returncode == 0
            assert (tmp_path / f"again{n}.png").read_bytes() == (tmp_path / f"{n}.png").read_bytes()
    finally:
        d.stop()


def test_the_async_sdk_has_the_job_calls(tmp_path):
    import asyncio

    from dreamrender.client import AsyncDreamClient

    d = Dreamd(tmp_path)

    async def go() -> tuple[str, list, int]:
        async with AsyncDreamClient(d.target) as c:
            job_id = ""
            async for ev in c.render_style(CONTENT, [STYLE], size=64, scales=1, iterations=30, detach=True):
                if isinstance(ev, pb.Accepted):
                    job_id = ev.job_id
                    break
            kinds = [type(ev).__name__ async for ev in c.watch_job(job_id)]
            listed = await c.list_jobs(state="succeeded")
            job = await c.get_job(job_id)
            return job_id, kinds, job.state if listed.jobs[0].job_id == job_id else -1

    try:
        job_id, kinds, state = asyncio.run(go())
        assert kinds[0] == "Accepted" and kinds[-1] == "Result" and state == pb.JOB_STATE_SUCCEEDED
    finally:
        d.stop()


def test_flags_exist_and_a_bad_store_url_is_refused(tmp_path):
    r = subprocess.run([str(Path(sys.executable).parent / "dreamd"), "--listen", "127.0.0.1:0",
                        "--job-store", "mysql://nowhere", "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "--job-store" in r.stderr
