"""Lanes (#26) on the scheduler alone: short work starts beside long work, separate queues,
memory admission over both lanes, and the CPU share's pause and budget."""
from __future__ import annotations

import asyncio
import threading
import time

import grpc
import pytest
import torch

from dreamrender.client import DreamClient, DreamError
from dreamrender.server._cpu_share import CpuShare, install_pause_hooks, pausable_thread
from dreamrender.server.scheduler import LONG, SHORT, CallerLimitError, Job, LaneLimits, QueueFullError, Scheduler
from dreamrender.v1 import dreamrender_pb2 as pb

from ..conftest import start_server


def _job(lane: str, gate: threading.Event, log: list[str], name: str, caller: str = "a", memory: int = 0) -> Job:
    def body(emit, cancel) -> None:
        log.append(f"{name} start")
        gate.wait(5)
        log.append(f"{name} end")

    return Job(body, lambda q: q, "RenderStyle", caller=caller, lane=lane, memory=memory)


async def _finish(*jobs: Job) -> None:
    for job in jobs:
        async for _ in job.responses():
            pass


def test_a_short_job_starts_and_ends_while_the_long_one_runs():
    async def go() -> list[str]:
        s, log = Scheduler("cuda", short_share=0), []  # no pausing: the bodies here do not compute
        long_gate, short_gate = threading.Event(), threading.Event()
        long_job = _job(LONG, long_gate, log, "long")
        short_job = _job(SHORT, short_gate, log, "short")
        assert s.submit(long_job) == 0 and s.submit(short_job) == 0
        short_gate.set()
        await _finish(short_job)
        assert not long_job.finished
        long_gate.set()
        await _finish(long_job)
        await s.close()
        return log

    assert asyncio.run(go()) == ["long start", "short start", "short end", "long end"]


def test_lanes_have_their_own_queue_limits_and_caller_caps():
    async def go() -> None:
        s = Scheduler("cuda", max_queue=1, max_jobs_per_caller=0, short=LaneLimits(3, 3, 1), short_share=0)
        gate, log = threading.Event(), []
        s.submit(_job(LONG, gate, log, "l1"))
        assert s.submit(_job(LONG, gate, log, "l2", caller="b")) == 1
        with pytest.raises(QueueFullError, match="long render queue is full"):
            s.submit(_job(LONG, gate, log, "l3", caller="c"))
        # The long lane is full; the short one still takes jobs, up to its own limits.
        assert [s.submit(_job(SHORT, gate, log, f"s{i}")) for i in range(3)] == [0, 1, 2]
        with pytest.raises(CallerLimitError):  # caller a holds 3 short jobs, its cap there
            s.submit(_job(SHORT, gate, log, "s3"))
        assert s.submit(_job(SHORT, gate, log, "s4", caller="d")) == 1  # d not yet served: ahead of a
        with pytest.raises(QueueFullError, match="short render queue is full"):
            s.submit(_job(SHORT, gate, log, "s5", caller="e"))
        gate.set()
        await asyncio.sleep(0.2)
        await s.close()

    asyncio.run(go())


def test_memory_admission_counts_both_lanes():
    async def go() -> list[str]:
        s = Scheduler("cuda", max_memory=100, short_share=0)
        gate, short_gate, log = threading.Event(), threading.Event(), []
        s.submit(_job(LONG, gate, log, "long", memory=70))
        small = _job(SHORT, short_gate, log, "small", memory=30)
        big = _job(SHORT, short_gate, log, "big", memory=30)
        assert s.submit(small) == 0  # 70 + 30 fit
        assert s.submit(big) == 1  # 70 + 30 + 30 do not: it waits for memory, not for the lane
        short_gate.set()
        await _finish(small, big)  # big starts once small's 30 are back
        gate.set()
        await asyncio.sleep(0.1)
        await s.close()
        return log

    log = asyncio.run(go())
    assert log.index("small end") < log.index("big start") < log.index("long end")


def test_cancelling_the_long_job_leaves_short_jobs_running():
    async def go() -> None:
        s, log = Scheduler("cuda", short_share=0), []
        gate = threading.Event()
        long_job = Job(lambda emit, cancel: cancel.wait(5), lambda q: q, "RenderStyle", lane=LONG)
        short_job = _job(SHORT, gate, log, "short")
        s.submit(long_job)
        s.submit(short_job)
        s.cancel(long_job, RuntimeError("cancelled"))
        long_job.cancel.set()
        await _finish(long_job)
        assert not short_job.cancel.is_set() and not short_job.finished
        gate.set()
        await _finish(short_job)
        assert log == ["short start", "short end"]
        await s.close()

    asyncio.run(go())


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_short_share_budget_bounds_short_time_while_a_long_job_runs():
    clock = _Clock()
    share = CpuShare(0.25, burst=2.0, clock=clock)
    assert share.may_start_short()  # idle long lane: always
    share.long_running(True)
    share.short_started()
    clock.now += 2.5  # a 2.5 s short job spends the whole burst and 0.5 s more
    share.short_ended()
    assert not share.may_start_short()
    # 0.5 s owed at 1/3 s earned per second of long work: about 1.5 s until the next may start.
    assert share.wait_seconds() == pytest.approx(1.5, abs=0.01)
    clock.now += 1.6
    assert share.may_start_short()
    assert share.paused_seconds == pytest.approx(2.5)
    share.long_running(False)
    assert share.may_start_short() and share._balance == 2.0


def test_overlapping_short_jobs_spend_the_budget_as_they_run():
    clock = _Clock()
    share = CpuShare(0.25, burst=2.0, clock=clock)
    share.long_running(True)
    share.short_started()
    for _ in range(3):  # a relay of short jobs: one always running, so none is ever the last to end
        clock.now += 1.0
        share.short_started()
        share.short_ended()
    assert not share.may_start_short()  # 3 s spent of a 2 s burst, though short work never stopped


def test_a_long_lane_thread_pauses_at_its_next_layer_forward_and_backward_while_short_work_runs():
    install_pause_hooks()
    share = CpuShare(0.5)
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    x = torch.randn(2, 4, requires_grad=True)
    reference = torch.autograd.grad(net(x).sum(), x)[0]
    layers: list[str] = []
    hook = net[2].register_forward_pre_hook(lambda m, i: layers.append("last layer"))
    out: dict[str, torch.Tensor] = {}

    def long_work() -> None:
        pausable_thread(share)
        y = net[0](x)  # the first layer runs; short work then starts
        started.set()
        resume.wait(5)
        out["grad"] = torch.autograd.grad(net[2](net[1](y)).sum(), x)[0]

    started, resume = threading.Event(), threading.Event()
    t = threading.Thread(target=long_work)
    t.start()
    started.wait(5)
    share.short_started()
    resume.set()
    time.sleep(0.2)
    assert layers == [] and t.is_alive()  # waiting before the next layer
    share.short_ended()
    t.join(5)
    hook.remove()
    assert layers == ["last layer"] and torch.allclose(out["grad"], reference)
    # A thread that is not a long lane's never pauses.
    share.short_started()
    assert torch.autograd.grad(net(x).sum(), x)[0].shape == x.shape
    share.short_ended()


# -- through a real server -----------------------------------------------------------------
LONG_DREAM = dict(noise=(256, 256), octaves=1, steps=1000, timeout=120)


def _long_running(client: DreamClient):
    """A long dream's stream, returned once it is mid-render (its first progress has come)."""
    stream = client.render_dream(**LONG_DREAM)
    accepted = next(stream)
    for event in stream:
        if isinstance(event, pb.Progress):
            return stream, accepted.job_id
    raise AssertionError("the dream ended before its first progress")


def test_paintings_and_samples_finish_while_a_long_render_is_mid_render(models_dir, chelsea_bytes):
    srv = start_server(models_dir, short_share=0.5, short_burst=1.0)
    try:
        with DreamClient(srv.target) as c, DreamClient(srv.target) as other:
            stream, long_id = _long_running(c)
            done = 0
            for i in range(6):  # each starts at once, beside the render
                events = list(other.render_style(chelsea_bytes, [], presets=[i], size=64, timeout=30))
                assert isinstance(events[0], pb.Accepted) and events[0].queue_position == 0
                assert isinstance(events[-1], pb.Result)
                done += 1
            job = other.get_job(long_id)
            assert job.state == pb.JOB_STATE_RUNNING and done == 6
            assert srv.scheduler.share.paused_seconds > 0  # the dream paused while they ran
            # Cancelling the long render leaves the short lane alone.
            c.cancel_job(long_id)
            with pytest.raises(DreamError) as err:
                for _ in stream:
                    pass
            assert err.value.code == grpc.StatusCode.CANCELLED
            assert other.style(chelsea_bytes, [], presets=[3], size=64, timeout=30)
    finally:
        srv.stop()


def test_the_short_lane_queue_limit_is_its_own_and_named(models_dir, chelsea_bytes):
    srv = start_server(models_dir, max_queue=0, short_max_queue=0, short_jobs=1)
    try:
        with DreamClient(srv.target) as c, DreamClient(srv.target) as other:
            stream, long_id = _long_running(c)  # the long lane is busy and may queue nothing
            with pytest.raises(DreamError) as err:
                next(other.render_dream(**LONG_DREAM))
            assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "long render queue" in err.value.details
            # A painting still starts at once: its lane is free.
            assert other.style(chelsea_bytes, [], presets=[1], size=64, timeout=30)
            c.cancel_job(long_id)
            stream.close()
    finally:
        srv.stop()
