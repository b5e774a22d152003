"""The scheduler on its own: callers served in turn, the per-caller cap, positions."""
from __future__ import annotations

import asyncio
import threading

import pytest

from dreamrender.server.engine.events import Queued
from dreamrender.server.scheduler import CallerLimitError, Job, QueueFullError, Scheduler


def _job(caller: str, log: list[str], gate: threading.Event, name: str) -> Job:
    def body(emit, cancel) -> None:
        log.append(name)
        gate.wait(5)

    return Job(body, lambda q: q, "RenderDream", caller=caller)


async def _run_all(s: Scheduler, jobs: list[Job], gate: threading.Event) -> None:
    gate.set()
    for job in jobs:
        async for _ in job.responses():
            pass


def test_callers_are_served_in_turn_not_first_come():
    async def go() -> tuple[list[str], list[int]]:
        s, log, gate = Scheduler("cpu", max_queue=16), [], threading.Event()
        # A queues three jobs before B and C queue one each: A's backlog must not hold them back.
        names = ["a1", "a2", "a3", "b1", "c1", "a4", "b2"]
        jobs = [_job(n[0], log, gate, n) for n in names]
        positions = [s.submit(j) for j in jobs]
        await asyncio.sleep(0.05)  # a1 starts
        final = [j.position for j in jobs]
        await _run_all(s, jobs, gate)
        await s.close()
        return log, final

    order, final = asyncio.run(go())
    assert order == ["a1", "b1", "c1", "a2", "b2", "a3", "a4"]
    # The positions each waiting job was told match the order it then ran in.
    assert final == [0, 3, 5, 1, 2, 6, 4]


def test_positions_announced_when_a_newcomer_goes_ahead():
    async def go() -> list[int]:
        s, log, gate = Scheduler("cpu"), [], threading.Event()
        a1, a2 = _job("a", log, gate, "a1"), _job("a", log, gate, "a2")
        s.submit(a1)
        await asyncio.sleep(0.05)
        assert s.submit(a2) == 1
        b1 = _job("b", log, gate, "b1")
        assert s.submit(b1) == 1  # b has not been served yet: it goes before a's second job
        await asyncio.sleep(0.01)
        told = []
        while a2.pending:
            item = a2._pending.popleft()
            told.append(item.queue_position if isinstance(item, Queued) else None)
        await _run_all(s, [a1, b1], gate)
        await s.close()
        return told

    assert asyncio.run(go()) == [2]


def test_caller_cap_counts_running_and_waiting_and_frees_a_slot_when_one_ends():
    async def go() -> None:
        s, log, gate = Scheduler("cpu", max_jobs_per_caller=2), [], threading.Event()
        a1, a2 = _job("a", log, gate, "a1"), _job("a", log, gate, "a2")
        s.submit(a1)
        await asyncio.sleep(0.05)
        s.submit(a2)
        with pytest.raises(CallerLimitError) as err:
            s.submit(_job("a", log, gate, "a3"))
        assert isinstance(err.value, QueueFullError)  # RESOURCE_EXHAUSTED with RetryInfo, like a full queue
        assert "2 jobs running or waiting" in str(err.value)
        s.submit(_job("b", log, gate, "b1"))  # another caller is not affected
        s.withdraw(a2)
        s.submit(_job("a", log, gate, "a3"))  # withdrawing one frees its slot
        gate.set()
        await asyncio.sleep(0.2)
        await s.close()

    asyncio.run(go())


def test_a_job_submitted_while_the_last_one_cleans_up_is_next_at_position_0(monkeypatch):
    import dreamrender.server.scheduler as scheduler_module

    cleaning, done_cleaning = threading.Event(), threading.Event()

    def slow_release() -> None:  # the worker hands memory back after the job's stream has ended
        cleaning.set()
        done_cleaning.wait(5)

    monkeypatch.setattr(scheduler_module, "release_memory", slow_release)

    async def go() -> int:
        s, log, gate = Scheduler("cpu"), [], threading.Event()
        gate.set()
        first = _job("a", log, gate, "first")
        s.submit(first)
        async for _ in first.responses():
            pass
        while not cleaning.is_set():
            await asyncio.sleep(0.01)
        position = s.submit(_job("b", log, gate, "second"))
        done_cleaning.set()
        await asyncio.sleep(0.1)
        await s.close()
        return position

    assert asyncio.run(go()) == 0


def test_the_queue_full_message_and_retry_info_carry_one_figure():
    async def go() -> QueueFullError:
        s, log, gate = Scheduler("cpu", max_queue=1), [], threading.Event()
        s._recent.extend([0.26, 0.31])  # two jobs took 0.285 s on average
        s.submit(_job("a", log, gate, "a1"))
        await asyncio.sleep(0.05)
        s.submit(_job("b", log, gate, "b1"))
        with pytest.raises(QueueFullError) as err:
            s.submit(_job("c", log, gate, "c1"))
        gate.set()
        await s.close()
        return err.value

    err = asyncio.run(go())
    assert str(err).endswith("retry in about 0.3 s") and err.retry_after == pytest.approx(0.285)
