"""Run-time helpers shared by the engines."""
from __future__ import annotations

import pytest

from dreamrender.server.engine import runtime


def test_eta_comes_from_measured_steps_only(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(runtime.time, "perf_counter", lambda: now[0])
    clock = runtime.WorkClock(10)
    now[0] += 50  # set-up before the first step: not a step's cost
    clock.add(1)
    assert clock.eta == 0.0  # nothing timed yet
    now[0] += 2
    clock.add(1)
    assert clock.eta == pytest.approx(2 * 8)  # 2 s a step, 8 steps left
