"""The gRPC service end to end: a real server on 127.0.0.1:0 and the SDK."""
from __future__ import annotations


import asyncio
import logging
import threading
import time

import grpc
import pytest

from dreamrender.client import AsyncDreamClient, DreamClient, DreamError
from dreamrender.v1 import dreamrender_pb2 as pb

from ..conftest import DATA, start_server

FAST = dict(octaves=2, steps=2)


def test_health_and_models(server):
    with DreamClient(server.target) as c:
        assert c.health() == "SERVING"
        models = {m.name: m for m in c.list_models(timeout=10)}
    assert {"vgg16", "vgg19", "mobilenet_v2", "googlenet", "tiny"} <= set(models)
    assert models["tiny"].available and models["tiny"].supports_style
    assert not models["vgg19"].available  # no weights in the test store
    g = models["googlenet"]
    assert g.default_dream_layer == "mixed4d_3x3_bottleneck_pre_relu"
    assert {layer.name: layer.channels for layer in g.layers}["mixed4d_3x3_bottleneck_pre_relu"] == 144


def test_dream_stream_order_frames_and_result(server, chelsea_bytes):
    with DreamClient(server.target) as c:
        events = list(c.render_dream(chelsea_bytes, preview={"every": 1, "format": "png"}, timeout=60, **FAST))
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "Accepted" and kinds[-1] == "Result"
    assert kinds.count("Progress") == 4 and kinds.count("Frame") == 4
    assert events[0].job_id and events[0].server_id
    result = events[-1]
    assert (result.stats.width, result.stats.height) == (96, 64)
    assert result.image.media_type == "image/png" and result.image.data.startswith(b"\x89PNG")
    assert all(e.image.media_type == "image/png" for e in events if isinstance(e, pb.Frame))


def test_same_request_same_bytes(server, chelsea_bytes):
    with DreamClient(server.target) as c:
        a = c.dream(chelsea_bytes, seed=5, timeout=60, **FAST)
        b = c.dream(chelsea_bytes, seed=5, timeout=60, **FAST)
    assert a == b


def test_noise_start_and_size(server):
    with DreamClient(server.target) as c:
        result = [e for e in c.render_dream(noise=(80, 48), timeout=60, **FAST) if isinstance(e, pb.Result)][0]
        assert (result.stats.width, result.stats.height) == (80, 48)
        result = [e for e in c.render_dream(DATA / "chelsea_small.png", size=48, timeout=60, **FAST)
                  if isinstance(e, pb.Result)][0]
        assert (result.stats.width, result.stats.height) == (48, 32)


@pytest.mark.parametrize("kwargs,field", [
    (dict(model="nope"), "model"),
    (dict(layer="nope"), "terms[0].layer"),
    (dict(layer="relu3_1", channels=[99]), "terms[0].channels"),
    (dict(octaves=0), "octaves"),
    (dict(octave_scale=1.0), "octave_scale"),
    (dict(step_size=-1.0), "step_size"),
    (dict(tile_size=8), "tile_size"),
    (dict(size=5000), "size"),
    (dict(preview={"max_side": 1}), "preview.max_side"),
])
def test_bad_settings_are_invalid_argument_naming_the_field(server, chelsea_bytes, kwargs, field):
    with DreamClient(server.target) as c, pytest.raises(DreamError) as err:
        list(c.render_dream(chelsea_bytes, timeout=30, **kwargs))
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in err.value.violations] == [field]
    assert "allowed" in err.value.details


@pytest.mark.parametrize("data", [b"", b"not an image at all", (DATA / "chelsea_small.png").read_bytes()[:200]])
def test_undecodable_image_is_invalid_argument(server, data):
    with DreamClient(server.target) as c, pytest.raises(DreamError) as err:
        list(c.render_dream(data, timeout=30))
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and err.value.violations[0][0] == "image"


def test_missing_start_and_missing_weights(server):
    with DreamClient(server.target) as c:
        with pytest.raises(DreamError) as err:
            list(c.render_dream(None, timeout=30))
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and err.value.violations[0][0] == "start"
        with pytest.raises(DreamError) as err:
            list(c.render_dream(DATA / "chelsea_small.png", model="vgg19", timeout=30))
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION and "models pull vgg19" in err.value.details


def test_cancel_stops_the_job_and_server_keeps_serving(server, chelsea_bytes):
    with DreamClient(server.target) as c:
        stream = c.render_dream(noise=(512, 512), octaves=1, steps=1000, timeout=60)
        for ev in stream:
            if isinstance(ev, pb.Progress) and ev.step >= 2:
                break
        stream.close()  # cancels the call
        deadline = time.monotonic() + 10
        while server.scheduler.active and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.scheduler.active == 0  # the worker left the loop
        assert c.dream(chelsea_bytes, timeout=60, **FAST).startswith(b"\x89PNG")


def test_deadline_gives_deadline_exceeded_and_frees_worker(server, chelsea_bytes):
    with DreamClient(server.target) as c:
        with pytest.raises(DreamError) as err:
            list(c.render_dream(noise=(512, 512), octaves=1, steps=1000, timeout=1.0))
        assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        deadline = time.monotonic() + 10
        while server.scheduler.active and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.scheduler.active == 0


def test_queue_full_is_resource_exhausted_and_positions_stream(models_dir, chelsea_bytes):
    srv = start_server(models_dir, max_queue=1)
    try:
        with DreamClient(srv.target) as c:
            first = c.render_dream(noise=(512, 512), octaves=1, steps=1000, timeout=60)
            assert next(first).queue_position == 0
            second = c.render_dream(chelsea_bytes, timeout=60, **FAST)
            assert next(second).queue_position == 1
            with pytest.raises(DreamError) as err:
                list(c.render_dream(chelsea_bytes, timeout=60, **FAST))
            assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.value.retry_after is not None
            first.close()
            rest = list(second)
            assert isinstance(rest[0], pb.Queued) and rest[0].queue_position == 0
            assert isinstance(rest[-1], pb.Result)
    finally:
        srv.stop()


def test_style_stream_and_bad_input(server, chelsea_bytes):
    starry = DATA / "starry_small.png"
    with DreamClient(server.target) as c:
        events = list(c.render_style(chelsea_bytes, [starry], size=64, scales=1, iterations=6,
                                     preview={"every": 2}, timeout=60))
        assert isinstance(events[0], pb.Accepted) and isinstance(events[-1], pb.Result)
        assert sum(isinstance(e, pb.Frame) for e in events) == 3
        last_progress = [e for e in events if isinstance(e, pb.Progress)][-1]
        assert set(last_progress.values) >= {"content", "style", "total"} and last_progress.step == 6
        cases = [
            (dict(styles=[]), "styles"),
            (dict(style_layers=["relu9_9"]), "style_layers[0].layer"),
            (dict(size=0), "size"),
            (dict(size=5000), "size"),
            (dict(style_weights=[-1.0]), "styles[0].weight"),
            (dict(lbfgs_history=0), "lbfgs_history"),
        ]
        for kwargs, field in cases:
            styles = kwargs.pop("styles", [starry])
            with pytest.raises(DreamError) as err:
                list(c.render_style(chelsea_bytes, styles, timeout=30, **kwargs))
            assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT, kwargs
            assert err.value.violations[0][0] == field, (kwargs, err.value.violations)


def test_async_client(server, chelsea_bytes):
    async def go():
        async with AsyncDreamClient(server.target) as c:
            models = await c.list_models()
            kinds = [type(e).__name__ async for e in c.render_dream(chelsea_bytes, timeout=60, **FAST)]
            return models, kinds

    models, kinds = asyncio.run(go())
    assert models and kinds[0] == "Accepted" and kinds[-1] == "Result"


def test_request_id_metadata_reaches_the_server_log(server, chelsea_bytes, caplog):
    # The caller's x-request-id travels as metadata and the server puts it on the job's log lines
    # (and the JSON log's request_id field), so a backend can find its call in dreamd's log.
    caplog.set_level(logging.INFO, logger="dreamrender.server.servicer")
    with DreamClient(server.target, metadata=[("x-request-id", "abc-123")]) as c:
        events = list(c.render_dream(chelsea_bytes, metadata=[("x-extra", "1")], timeout=60, **FAST))
    job_id = next(e.job_id for e in events if isinstance(e, pb.Accepted))
    mine = [r for r in caplog.records if getattr(r, "job_id", None) == job_id]
    assert mine and all(getattr(r, "request_id", None) == "abc-123" for r in mine)
    assert any("x-request-id abc-123" in r.getMessage() for r in mine)
    with DreamClient(server.target) as c:  # without the header the field is empty
        events = list(c.render_dream(chelsea_bytes, timeout=60, **FAST))
    job_id = next(e.job_id for e in events if isinstance(e, pb.Accepted))
    assert all(getattr(r, "request_id", "") == "" for r in caplog.records if getattr(r, "job_id", None) == job_id)


def test_unknown_enum_values(server, chelsea_bytes):
    from dreamrender.client import style_request
    from dreamrender.errors import InvalidArgumentError
    from dreamrender.v1 import dreamrender_pb2_grpc as pb_grpc

    with pytest.raises(InvalidArgumentError) as err:  # the SDK refuses to encode it
        style_request(chelsea_bytes, [chelsea_bytes], optimizer="sgd")
    assert err.value.field == "optimizer" and "lbfgs" in err.value.allowed
    req = style_request(chelsea_bytes, [chelsea_bytes])
    req.optimizer = 7  # a newer client's value this server does not know
    with grpc.insecure_channel(server.target) as ch, pytest.raises(grpc.RpcError) as rpc_err:
        list(pb_grpc.DreamRenderServiceStub(ch).RenderStyle(req, timeout=30))
    assert rpc_err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "optimizer" in rpc_err.value.details()
