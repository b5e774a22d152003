"""Hardening round two (#11): each defect reproduced through a real server on 127.0.0.1."""
from __future__ import annotations

import logging

import grpc
import pytest

from dreamrender.v1 import dreamrender_pb2 as pb

from ..conftest import DATA, start_server

METHODS = {"RenderDream": pb.RenderDreamResponse, "RenderStyle": pb.RenderStyleResponse,
           "Evaluate": pb.EvaluateResponse, "ListModels": pb.ListModelsResponse}


def _raw_call(target: str, method: str, payload: bytes) -> grpc.RpcError:
    """Send raw bytes as the request of `method` and return the error it ends with."""
    with grpc.insecure_channel(target) as ch:
        kind = ch.unary_stream if method.startswith("Render") else ch.unary_unary
        call = kind(f"/dreamrender.v1.DreamRenderService/{method}", request_serializer=lambda b: b,
                    response_deserializer=METHODS[method].FromString)
        with pytest.raises(grpc.RpcError) as err:
            result = call(payload, timeout=30)
            if method.startswith("Render"):
                list(result)
        return err.value


def _bad_utf8_model() -> bytes:
    # Field 1 (model, string), length 3, bytes that are not UTF-8.
    return b"\x0a\x03\xff\xfe\xfd"


@pytest.mark.parametrize("method", ["RenderDream", "RenderStyle", "Evaluate"])
@pytest.mark.parametrize("payload", [b"\xff\xff\xff\xff garbage", _bad_utf8_model(), b"\x0a\x7f\x01"],
                         ids=["garbage", "bad-utf8", "truncated"])
def test_corrupt_requests_are_invalid_argument_without_a_traceback(server, caplog, method, payload):
    with caplog.at_level(logging.DEBUG):
        err = _raw_call(server.target, method, payload)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert "cannot parse" in err.details() and "Request" in err.details()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_server_still_renders_after_corrupt_requests(server, chelsea_bytes):
    from dreamrender.client import DreamClient

    _raw_call(server.target, "RenderDream", b"\xff\xff")
    with DreamClient(server.target) as c:
        assert c.dream(chelsea_bytes, octaves=1, steps=1, timeout=60).startswith(b"\x89PNG")


# -- 1. decoding off the loop, bounded ---------------------------------------------------------

@pytest.fixture(scope="module")
def big_png() -> bytes:
    """8000x8000 in one colour: about 200 KB on the wire, 192 MB decoded (the issue's reproduction)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8000, 8000), (90, 120, 200)).save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


@pytest.fixture(scope="module")
def big_server(models_dir):
    """dreamd's default input limit (64 Mpx), which the 8000x8000 image is under."""
    srv = start_server(models_dir, max_input_pixels=64_000_000, max_side=4096)
    yield srv
    srv.stop()


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return int(next(x for x in f if x.startswith("VmRSS")).split()[1]) / 1024


def test_health_answers_while_a_maximal_image_decodes(big_server, big_png):
    server = big_server
    import threading
    import time

    from dreamrender.client import DreamClient

    done = threading.Event()
    outcome: list = []

    def dream() -> None:
        try:
            with DreamClient(server.target) as c:
                outcome.append(c.dream(pb.Image(data=big_png), size=64, octaves=1, steps=1, timeout=120))
        except Exception as exc:  # reported by the assertion below
            outcome.append(exc)
        done.set()

    with DreamClient(server.target) as c:
        c.health(timeout=10)  # channel up before the clock starts
        threading.Thread(target=dream, daemon=True).start()
        worst = 0.0
        while not done.is_set():
            t = time.perf_counter()
            assert c.health(timeout=10) == "SERVING"
            worst = max(worst, time.perf_counter() - t)
            time.sleep(0.02)
    assert isinstance(outcome[0], bytes), outcome
    # Before the fix the loop decoded for seconds (6.6 s stalls); 1 s leaves room for a loaded CI box.
    assert worst < 1.0, f"health took {worst:.3f} s"


def test_a_large_upload_is_decoded_at_the_size_the_render_needs(big_png):
    from dreamrender.models import ModelStore
    from dreamrender.server.requests import Limits, RequestReader

    reader = RequestReader(limits=Limits(64_000_000, 4096), store=ModelStore(None), default_dream_model="tiny",
                           default_style_model="tiny")
    req = pb.RenderDreamRequest(model="tiny", image=pb.Image(data=big_png), size=300)
    assert tuple(reader.dream(req).start.shape) == (1, 3, 300, 300)


def test_refused_maximal_requests_leave_no_memory_behind(big_server, big_png):
    server = big_server
    from dreamrender.client import DreamClient, DreamError

    with DreamClient(server.target) as c:
        def refuse() -> None:
            with pytest.raises(DreamError) as err:  # 8000 px is over max_side: refused from the header
                list(c.render_dream(pb.Image(data=big_png), timeout=30))
            assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and err.value.violations[0][0] == "image"

        refuse()
        idle = _rss_mb()
        for _ in range(20):
            refuse()
    assert _rss_mb() - idle < 200


def test_queued_images_have_a_memory_budget(models_dir, chelsea_bytes):
    from dreamrender.client import DreamClient, DreamError

    srv = start_server(models_dir, max_queued_pixels=10_000)  # chelsea_small is 96x64 = 6,144 px
    try:
        with DreamClient(srv.target) as c:
            running = c.render_dream(noise=(256, 256), octaves=1, steps=1000, timeout=60)
            next(iter(running))  # accepted: it runs, holding no queue budget
            queued = c.render_dream(chelsea_bytes, octaves=1, steps=1, timeout=60)
            assert isinstance(next(iter(queued)), pb.Accepted)
            with pytest.raises(DreamError) as err:
                list(c.render_dream(chelsea_bytes, octaves=1, steps=1, timeout=60))
            assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "budget" in err.value.details
            running.close()
            queued.close()
    finally:
        srv.stop()


# -- 2. shapes the network cannot take ---------------------------------------------------------

def _png(w: int, h: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 100, 50)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("content,size", [((4000, 40), 32), ((4000, 40), 512), ((1, 7000), 64)])
def test_elongated_content_is_refused_naming_the_field(server, content, size):
    from dreamrender.client import DreamClient, DreamError

    with DreamClient(server.target) as c, pytest.raises(DreamError) as err:
        list(c.render_style(_png(*content), [DATA / "starry_small.png"], size=size, iterations=2, timeout=60))
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.violations[0][0] == "content" and "shorter side" in err.value.details


@pytest.mark.parametrize("style,scale", [((1000, 40), 1.0), ((40, 1000), 1.0), ((96, 64), 0.01)])
def test_elongated_or_tiny_styles_render(server, chelsea_bytes, style, scale):
    from dreamrender.client import DreamClient

    data = _png(*style) if style != (96, 64) else (DATA / "starry_small.png").read_bytes()
    with DreamClient(server.target) as c:
        events = list(c.render_style(chelsea_bytes, [data], style_scales=[scale], size=64, scales=2, iterations=2,
                                     timeout=120))
    assert isinstance(events[-1], pb.Result)


def test_style_scale_obeys_max_side(models_dir, chelsea_bytes):
    from dreamrender.client import DreamClient, DreamError

    srv = start_server(models_dir, max_side=512)
    try:
        with DreamClient(srv.target) as c, pytest.raises(DreamError) as err:
            list(c.render_style(chelsea_bytes, [DATA / "starry_small.png"], style_scales=[8.0], size=256, timeout=60))
        assert err.value.violations[0][0] == "styles[0].scale" and "512" in err.value.details
    finally:
        srv.stop()


# -- 3. out of memory on the CPU ---------------------------------------------------------------

def test_cpu_out_of_memory_is_resource_exhausted(server, chelsea_bytes, monkeypatch):
    import torch

    import dreamrender.server.servicer as service
    from dreamrender.client import DreamClient, DreamError

    def huge(*_a, **_k):
        torch.empty(2**60, dtype=torch.uint8)  # the CPU allocator's own failure (a RuntimeError, not OutOfMemoryError)

    monkeypatch.setattr(service, "render_dream", huge)
    with DreamClient(server.target) as c, pytest.raises(DreamError) as err:
        c.dream(chelsea_bytes, timeout=30)
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "out of memory" in err.value.details


# -- 4. bounded request cost -------------------------------------------------------------------

def test_repeated_channels_are_refused(server, chelsea_bytes):
    from dreamrender.client import DreamClient, DreamError

    with DreamClient(server.target) as c, pytest.raises(DreamError) as err:
        list(c.render_dream(chelsea_bytes, layer="relu1_1", channels=[0] * 100, timeout=30))
    assert err.value.violations[0][0] == "terms[0].channels" and "repeated" in err.value.details


def test_work_over_the_limit_is_refused_with_the_estimate(models_dir):
    from dreamrender.client import DreamClient, DreamError

    srv = start_server(models_dir, max_work=1.0)
    try:
        with DreamClient(srv.target) as c:
            with pytest.raises(DreamError) as err:
                list(c.render_dream(noise=(512, 512), octaves=1, steps=10, timeout=30))
            assert err.value.violations[0][0] == "steps" and "3 Mpx-steps" in err.value.details
            with pytest.raises(DreamError) as err:
                list(c.render_style(DATA / "chelsea_small.png", [DATA / "starry_small.png"], size=512, scales=1,
                                    iterations=100, timeout=30))
            assert err.value.violations[0][0] == "iterations" and "Mpx-steps" in err.value.details
            assert c.dream(noise=(64, 64), octaves=1, steps=1, timeout=60).startswith(b"\x89PNG")
    finally:
        srv.stop()


# -- 5. long strings ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,field", [(dict(model="m" * 5000), "model"),
                                          (dict(layer="l" * 5000), "terms[0].layer"),
                                          (dict(layer="l" * 100), "terms[0].layer")])
def test_long_strings_are_refused_and_not_echoed(server, chelsea_bytes, kwargs, field):
    from dreamrender.client import DreamClient, DreamError

    with DreamClient(server.target) as c, pytest.raises(DreamError) as err:
        list(c.render_dream(chelsea_bytes, timeout=30, **kwargs))
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and err.value.violations[0][0] == field
    assert len(err.value.details) < 1000


# -- 9. a client that stops reading ------------------------------------------------------------

_STALLING_CLIENT = """
import sys
from dreamrender.client import DreamClient
with DreamClient(sys.argv[1]) as c:
    for ev in c.render_dream(noise=(512, 512), octaves=1, steps=1000, preview={"every": 1, "format": "png"},
                             timeout=300):
        print(type(ev).__name__, flush=True)
"""


def test_a_stopped_client_is_detected_and_its_backlog_stays_bounded(models_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    srv = start_server(models_dir, keepalive=1.0, keepalive_timeout=1.0)
    script = tmp_path / "stall.py"
    script.write_text(_STALLING_CLIENT)
    proc = subprocess.Popen([sys.executable, str(script), srv.target], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        seen = []
        for line in proc.stdout:  # wait until frames flow
            seen.append(line.strip())
            if line.startswith("Frame"):
                break
        assert seen[-1:] == ["Frame"] and srv.scheduler.active, (seen, proc.poll() is not None and proc.stderr.read())
        os.kill(proc.pid, signal.SIGSTOP)  # alive, connected, reading nothing, answering no ping
        worst, deadline = 0, time.monotonic() + 20
        while srv.scheduler.active and time.monotonic() < deadline:
            worst = max([worst] + [job.pending for job in srv.scheduler.running()])
            time.sleep(0.05)
        assert not srv.scheduler.active, "the render went on for a client that stopped 20 s ago"
        assert worst <= 12  # the backlog: 8, plus the kinds that are always kept
    finally:
        proc.kill()
        proc.wait(timeout=10)
        srv.stop()


# -- also: outcomes in the log and the metrics -------------------------------------------------

def _metrics(srv) -> str:
    import urllib.request

    return urllib.request.urlopen(f"http://127.0.0.1:{srv.server.metrics_port}/metrics", timeout=10).read().decode()


def _wait_for(srv, line: str) -> str:
    import time

    deadline, text = time.monotonic() + 20, ""
    while line not in text and time.monotonic() < deadline:  # the server hears of a close after the client
        text = _metrics(srv)
        time.sleep(0.05)
    return text


def test_a_delivered_result_is_ok_in_log_and_metrics(models_dir, chelsea_bytes, caplog, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from dreamrender.client import DreamClient

    srv = start_server(models_dir, metrics_port=0)
    try:
        with caplog.at_level(logging.INFO, logger="dreamrender"):
            with DreamClient(srv.target) as c:  # an SDK caller that stops reading at the result
                for ev in c.render_dream(chelsea_bytes, octaves=1, steps=2, timeout=60):
                    if isinstance(ev, pb.Result):
                        break
                for ev in c.render_style(chelsea_bytes, [DATA / "starry_small.png"], size=48, scales=1,
                                         iterations=2, timeout=60):
                    if isinstance(ev, pb.Result):
                        break
            cli = [str(Path(sys.executable).parent / "dreamctl"), "--server", srv.target]
            for args in (["dream", str(DATA / "chelsea_small.png"), "--octaves", "1", "--steps", "2"],
                         ["style", str(DATA / "chelsea_small.png"), str(DATA / "starry_small.png"), "--size", "48",
                          "--scales", "1", "--iterations", "2"]):
                r = subprocess.run(cli + args + ["-o", str(tmp_path / "o.png")], capture_output=True, text=True,
                                   timeout=120)
                assert r.returncode == 0, r.stderr
            text = _wait_for(srv, 'dreamrender_requests_total{code="OK",rpc="RenderStyle"} 2.0')
    finally:
        srv.stop()
    for rpc in ("RenderDream", "RenderStyle"):
        assert f'dreamrender_requests_total{{code="OK",rpc="{rpc}"}} 2.0' in text, text
        assert f'code="CANCELLED",rpc="{rpc}"' not in text
    ended = [r.getMessage() for r in caplog.records if " ended: " in r.getMessage()]
    assert len(ended) == 4 and all(" ended: OK " in m for m in ended), ended


def test_deadline_exceeded_is_counted_as_such(models_dir):
    from dreamrender.client import DreamClient, DreamError

    srv = start_server(models_dir, metrics_port=0)
    try:
        with DreamClient(srv.target) as c, pytest.raises(DreamError) as err:
            list(c.render_dream(noise=(256, 256), octaves=1, steps=1000, timeout=1.5))
        assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        text = _wait_for(srv, 'dreamrender_requests_total{code="DEADLINE_EXCEEDED",rpc="RenderDream"} 1.0')
    finally:
        srv.stop()
    assert 'dreamrender_requests_total{code="DEADLINE_EXCEEDED",rpc="RenderDream"} 1.0' in text
    assert 'code="CANCELLED",rpc="RenderDream"' not in text


def test_unknown_result_format_is_invalid_argument(server, chelsea_bytes):
    from dreamrender.client import DreamClient, DreamError

    from dreamrender.client import dream_request
    from dreamrender.v1 import dreamrender_pb2_grpc as pb_grpc

    req = dream_request(chelsea_bytes)
    req.result_format = 99  # the SDK refuses to send it; a raw client can
    with grpc.insecure_channel(server.target) as ch, pytest.raises(grpc.RpcError) as err:
        list(pb_grpc.DreamRenderServiceStub(ch).RenderDream(req, timeout=30))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "result_format" in err.value.details()


def test_a_client_lost_mid_send_is_one_warning_line_not_a_traceback(server):
    # grpc's core raises ExecuteBatchError when a response cannot go out because the client is gone;
    # its asyncio server then logs it with a traceback, as below (the race is not reproducible on
    # demand, so the record is made the way grpc makes it). The server installed a filter for it.
    import io
    import logging

    from grpc._cython import cygrpc

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("grpc._cython.cygrpc")
    logger.addHandler(handler)
    try:
        try:
            raise cygrpc.ExecuteBatchError('Failed "execute_batch": (<SendMessageOperation object at 0x7f>,)')
        except cygrpc.ExecuteBatchError:
            logger.exception("ExecuteBatchError raised in core by servicer method [%s]"
                             % "/dreamrender.v1.DreamRenderService/RenderDream")
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines == ["WARNING grpc._cython.cygrpc: client went away while a response was sent on "
                     "/dreamrender.v1.DreamRenderService/RenderDream (grpc ExecuteBatchError)"], lines
