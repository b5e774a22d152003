"""Fairness through a real server (#11): a per-caller cap, and callers served in turn."""
from __future__ import annotations

import re

import grpc
import pytest

from dreamrender.client import DreamClient, DreamError
from dreamrender.v1 import dreamrender_pb2 as pb

from ..conftest import start_server

LONG = dict(noise=(256, 256), octaves=1, steps=1000, timeout=60)
TOKENS = ("alice-token-0123456789", "bob-token-0123456789")


def _refusal(client: DreamClient) -> DreamError:
    with pytest.raises(DreamError) as err:
        next(client.render_dream(**LONG))
    return err.value


def test_one_host_cannot_take_every_slot(models_dir):
    srv = start_server(models_dir, max_queue=8, max_jobs_per_caller=2)
    try:
        # Two connections from one host are one caller: the peer address, without its port.
        with DreamClient(srv.target) as c1, DreamClient(srv.target) as c2:
            first = c1.render_dream(**LONG)
            assert next(first).queue_position == 0
            second = c2.render_dream(**LONG)
            assert next(second).queue_position == 1
            err = _refusal(c2)
            assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.retry_after is not None
            assert "per-caller limit" in err.details and "2 jobs" in err.details
            # The message's figure is RetryInfo's (no job has finished: the 30 s first guess).
            figure = float(re.search(r"retry in about ([0-9.]+) s", err.details).group(1))
            assert figure == err.retry_after == 30.0
            first.close()
            second.close()
    finally:
        srv.stop()


def test_callers_by_token_are_capped_apart_and_served_in_turn(models_dir, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("\n".join(TOKENS) + "\n")
    srv = start_server(models_dir, max_queue=8, max_jobs_per_caller=2, auth_token_file=str(tokens))
    try:
        with DreamClient(srv.target, token=TOKENS[0]) as alice, DreamClient(srv.target, token=TOKENS[1]) as bob:
            a1 = alice.render_dream(**LONG)  # calls start when made: one at a time, for a known order
            assert next(a1).queue_position == 0
            a2 = alice.render_dream(**LONG)
            assert next(a2).queue_position == 1
            assert _refusal(alice).code == grpc.StatusCode.RESOURCE_EXHAUSTED
            b1 = bob.render_dream(**LONG)  # the same host, another token: another caller
            # Bob has not been served yet, so he goes before Alice's second job, which is told so.
            assert next(b1).queue_position == 1
            moved = next(a2)
            assert isinstance(moved, pb.Queued) and moved.queue_position == 2
            for call in (a1, a2, b1):
                call.close()
    finally:
        srv.stop()
