"""Hardening, round three (#28), through a real server: page tokens, request ids, the store's cap
message, weights out of float32's scale, unbounded repeated fields, and an attached job after a kill."""
from __future__ import annotations

import signal
import threading
import time

import grpc
import pytest

from dreamrender.client import DreamClient, DreamError, dream_request, style_request
from dreamrender.v1 import dreamrender_pb2 as pb
from dreamrender.v1 import dreamrender_pb2_grpc as pb_grpc

from ..conftest import DATA, Dreamd, start_server

CONTENT, STYLE = (DATA / "chelsea_small.png").read_bytes(), (DATA / "starry_small.png").read_bytes()
QUICK = dict(size=64, scales=1, iterations=3, timeout=60)


def _refused(call, field: str, code=grpc.StatusCode.INVALID_ARGUMENT, words: str = "") -> DreamError:
    with pytest.raises(DreamError) as err:
        call()
    assert err.value.code == code, err.value
    assert field in [v[0] for v in err.value.violations], err.value
    assert words in err.value.details, err.value
    return err.value


def test_page_tokens_are_opaque_and_checked(server):
    with DreamClient(server.target) as c:
        for _ in range(3):
            c.style(CONTENT, [STYLE], **QUICK)
        seen, token = [], ""
        while True:
            page = c.list_jobs(page_size=1, page_token=token)
            seen += [j.job_id for j in page.jobs]
            token = page.next_page_token
            if not token:
                break
            assert not token.isdigit()  # opaque, not an offset
        assert len(seen) == len(set(seen)) >= 3
        for bad in ("99999999999999999999", str(2**63), "9" * 5000, "²", "٣", "3", "am9iczotMQ", "x" * 33):
            t = time.monotonic()
            _refused(lambda: c.list_jobs(page_token=bad), "page_token", words="not a token this server gave")
            assert time.monotonic() - t < 1.0


def test_a_request_id_names_one_request(server):
    with DreamClient(server.target) as c:
        c.dream(CONTENT, octaves=1, steps=2, size=64, request_id="d7-key", timeout=60)
        again = c.dream(CONTENT, octaves=1, steps=2, size=64, request_id="d7-key", timeout=60)  # a retry: same job
        assert again.startswith(b"\x89PNG")
        _refused(lambda: c.dream(CONTENT, octaves=1, steps=7, size=64, request_id="d7-key", timeout=60),
                 "request_id", words="was used for a different request")
        _refused(lambda: c.style(CONTENT, [STYLE], request_id="d7-key", **QUICK), "request_id",
                 words="different RenderDream")


def test_a_retry_after_a_cancel_runs_again(server):
    with DreamClient(server.target) as c:
        events = c.render_style(CONTENT, [STYLE], size=96, scales=1, iterations=400, request_id="d14-key",
                                detach=True, timeout=120)
        job_id = next(e.job_id for e in events if isinstance(e, pb.Accepted))
        next(e for e in events if isinstance(e, pb.Progress))
        assert c.cancel_job(job_id).state == pb.JOB_STATE_CANCELLED
        retry = list(c.render_style(CONTENT, [STYLE], size=96, scales=1, iterations=400, request_id="d14-key",
                                    detach=True, timeout=120))
        assert isinstance(retry[-1], pb.Result) and retry[0].job_id != job_id


def test_one_job_over_the_store_cap_is_told_so(models_dir, tmp_path):
    srv = start_server(models_dir, job_store_max_mb=1, data_dir=str(tmp_path))
    try:
        with DreamClient(srv.target) as c:
            big = b"\x89PNG" + bytes(2_300_000)  # refused by the store before anything decodes it
            req = style_request(CONTENT, [STYLE], detach=True, size=64)
            req.styles.add(image=pb.Image(data=big))
            with grpc.insecure_channel(srv.target) as ch:
                with pytest.raises(grpc.RpcError) as err:
                    list(pb_grpc.DreamRenderServiceStub(ch).RenderStyle(req, timeout=60))
            assert err.value.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT)
            if err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                assert "the job alone" in err.value.details() and "0.0 MiB" not in err.value.details()
    finally:
        srv.stop()


@pytest.mark.parametrize("kwargs, field", [
    (dict(terms=[("relu4_3", (), 1e308)]), "terms[0].weight"),
    (dict(terms=[("relu4_3", (), 1e-50)]), "terms[0].weight"),
])
def test_dream_weights_out_of_scale_are_refused(server, kwargs, field):
    with DreamClient(server.target) as c:
        _refused(lambda: c.dream(CONTENT, octaves=1, steps=2, size=64, model="tiny", timeout=60, **kwargs), field)


def test_style_and_preset_weights_out_of_scale_are_refused(server):
    with DreamClient(server.target) as c:
        for w in (1e308, 1e39, 1e-50, 5e-324):
            _refused(lambda: c.style(CONTENT, [], presets=[(3, w)], size=64, timeout=60), "presets[0].weight")
        _refused(lambda: c.style(CONTENT, [STYLE, STYLE], style_weights=[1e308, 1e308], method="feed_forward",
                                 size=64, timeout=60), "styles[0].weight")
        req = style_request(CONTENT, [STYLE], size=64, scales=1, iterations=3)
        req.style_layers.add(layer="relu1_1", weight=1e308)
        with grpc.insecure_channel(server.target) as ch:
            with pytest.raises(grpc.RpcError) as err:
                list(pb_grpc.DreamRenderServiceStub(ch).RenderStyle(req, timeout=60))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "style_layers[0].weight" in err.value.details()


def _raw(target: str, method: str, req) -> grpc.RpcError:
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 200 * 2**20)]) as ch:
        stub = pb_grpc.DreamRenderServiceStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            result = getattr(stub, method)(req, timeout=60)
            list(result) if method.startswith("Render") else result
    return err.value


@pytest.mark.parametrize("build, field", [
    (lambda: dream_request(CONTENT, terms=[("relu4_3", (), 1.0)] * 1_000_000), "terms"),
    (lambda: dream_request(CONTENT, terms=[("relu4_3", list(range(5_000_000)), 1.0)]), "terms[0].channels"),
    (lambda: style_request(CONTENT, [STYLE], content_layers=["relu4_2"] * 1_000_000), "content_layers"),
    (lambda: style_request(CONTENT, [], presets=[3] * 200_000), "presets"),
    (lambda: style_request(CONTENT, [STYLE], style_layers=["relu1_1"] * 2), "style_layers[1].layer"),
    (lambda: style_request(CONTENT, [STYLE] * 1000), "styles"),
])
def test_repeated_fields_are_bounded_and_refused_quickly(server, build, field):
    req = build()
    t = time.monotonic()
    err = _raw(server.target, "RenderDream" if isinstance(req, pb.RenderDreamRequest) else "RenderStyle", req)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and field in err.details(), err.details()
    assert time.monotonic() - t < 2.0  # parsed, then refused before any item is walked


def test_an_attached_job_killed_with_its_server_is_interrupted(tmp_path):
    d = Dreamd(tmp_path, "--job-heartbeat", "0.5")
    outcome: dict = {}

    def attached() -> None:
        try:
            with DreamClient(d.target) as c:
                for ev in c.render_style(STYLE_PATH, [STYLE_PATH], size=96, scales=1, iterations=400, timeout=120):
                    if isinstance(ev, pb.Accepted):
                        outcome["id"] = ev.job_id
                    elif isinstance(ev, pb.Progress) and ev.step > 20:
                        outcome["running"] = True
        except DreamError:
            pass

    t = threading.Thread(target=attached, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while "running" not in outcome and time.monotonic() < deadline:
        time.sleep(0.1)
    d.stop(signal.SIGKILL)
    d2 = Dreamd(tmp_path, "--job-heartbeat", "0.5", data_dir=d.data_dir)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with DreamClient(d2.target) as c:
                job = c.get_job(outcome["id"])
            if job.state != pb.JOB_STATE_RUNNING:
                break
            time.sleep(0.3)
        assert job.state == pb.JOB_STATE_INTERRUPTED and not job.detached
        assert job.HasField("checkpoint")  # its best image so far is kept
    finally:
        d2.stop()


STYLE_PATH = str(DATA / "starry_small.png")


@pytest.mark.parametrize("health_port", [False, True])
def test_garbage_to_health_is_invalid_argument_without_a_traceback(models_dir, caplog, health_port):
    import logging

    from ..conftest import free_port

    port = free_port()
    srv = start_server(models_dir, health_listen=f"127.0.0.1:{port}" if health_port else "")
    caplog.set_level(logging.INFO)
    try:
        target = f"127.0.0.1:{port}" if health_port else srv.target
        with grpc.insecure_channel(target) as ch:
            call = ch.unary_unary("/grpc.health.v1.Health/Check")
            for _ in range(20):
                with pytest.raises(grpc.RpcError) as err:
                    call(b"\xff" * 64, timeout=10)
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    finally:
        srv.stop()


def test_a_png_whose_data_cannot_fill_its_header_is_refused(server):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(1900 * 3) for _ in range(50))  # 50 rows of a 1900-row image
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1900, 1900, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    with DreamClient(server.target) as c:
        _refused(lambda: c.dream(png, octaves=1, steps=1, size=64, timeout=60), "image", words="truncated PNG")


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_an_animation_is_encoded_outside_the_servers_process(server, fmt):
    """#28 D21: Pillow's GIF and WebP writers hold the GIL in many short calls; in dreamd's process
    the event loop waited behind each of them and health took up to 232 ms while a 2048 px zoom was
    encoded. The encoding now runs in a process of its own: this (in-process) server's children
    spend CPU on it, and the animation is whole."""
    import io
    import resource

    from PIL import Image

    def children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    before = children_cpu()
    with DreamClient(server.target) as c:
        data = c.dream(CONTENT, octaves=1, steps=1, size=128, zoom_frames=4, result_format=fmt, timeout=120)
    assert children_cpu() > before  # the encoder process, waited for
    anim = Image.open(io.BytesIO(data))
    assert anim.format == fmt.upper() and anim.n_frames == 4 and max(anim.size) == 128


def test_get_job_of_a_result_larger_than_a_message(models_dir, tmp_path):
    """GetJob leaves out an image over --max-message-mb and says so; WatchJob and `dreamctl jobs get
    -o` deliver it in chunks (#28 D15: GetJob failed with RESOURCE_EXHAUSTED)."""
    import subprocess

    from ..conftest import BIN

    srv = start_server(models_dir, max_message_mb=1, max_side=2048)
    try:
        with DreamClient(srv.target) as c:
            events = list(c.render_style(CONTENT, [STYLE], size=1024, scales=1, iterations=1, init="noise", detach=True,
                                         timeout=120))
            job_id = next(e.job_id for e in events if isinstance(e, pb.Accepted))
            whole = events[-1].image.data
            assert len(whole) > 1 << 20
            job = c.get_job(job_id)
            assert job.state == pb.JOB_STATE_SUCCEEDED and job.image_in_chunks and not job.result.image.data
        r = subprocess.run([str(BIN / "dreamctl"), "--server", srv.target, "jobs", "get", job_id, "-o",
                            str(tmp_path / "out.png")], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "out.png").read_bytes() == whole
    finally:
        srv.stop()


def test_evaluate_does_not_wait_behind_checkpoint_scoring(models_dir):
    """D20: Evaluate shared the evaluator's one thread (nice 19) with checkpoint scoring, and waited
    17-79 s behind renders. It now runs in the short lane: with that thread held, it still answers."""
    srv = start_server(models_dir)
    release = threading.Event()
    try:
        srv.server.evaluator.pool.submit(release.wait, 60)  # checkpoint scoring, stuck for a minute
        with DreamClient(srv.target) as c:
            t = time.monotonic()
            rows = c.evaluate(CONTENT, [STYLE], [CONTENT], timeout=20)
            assert time.monotonic() - t < 20 and rows[0]["content"] == 0.0
    finally:
        release.set()
        srv.stop()


def test_evaluate_counts_against_the_memory_limit_and_the_short_lane(models_dir):
    """D24: Evaluate bypassed --max-job-memory and the queue (a 2048x2048 candidate under a 1024 MB
    limit took a server to 7186 MB). It is now refused from the candidates' headers, naming both
    figures, and it waits in the short lane's queue under its per-caller cap."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1600, 1600), (90, 120, 150)).save(buf, "PNG")
    srv = start_server(models_dir, max_job_memory=1024, max_side=2048, short_jobs_per_caller=1)
    try:
        with DreamClient(srv.target) as c:
            t = time.monotonic()
            err = _refused(lambda: c.evaluate(CONTENT, [STYLE], [CONTENT, buf.getvalue()], timeout=30), "candidates",
                           grpc.StatusCode.RESOURCE_EXHAUSTED, "--max-job-memory of 1,024 MB")
            assert time.monotonic() - t < 1.0 and "1600x1600 candidate" in err.details
            # One Evaluate held mid-run takes the caller's one short-lane place: a second is refused.
            gate = threading.Event()
            original = srv.server.evaluator.scorer

            def held_scorer(*args, **kwargs):
                gate.wait(30)
                return original(*args, **kwargs)

            srv.server.evaluator.scorer = held_scorer
            first = threading.Thread(target=lambda: c.evaluate(CONTENT, [STYLE], [CONTENT], timeout=60))
            first.start()
            deadline = time.monotonic() + 10
            while not srv.scheduler.running() and time.monotonic() < deadline:
                time.sleep(0.01)
            with pytest.raises(DreamError) as second:
                c.evaluate(CONTENT, [STYLE], [CONTENT], timeout=30)
            assert second.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "per-caller" in second.value.details
            gate.set()
            first.join(30)
            assert not first.is_alive()
    finally:
        srv.stop()


def test_feed_forward_paintings_count_against_the_memory_limit(models_dir):
    """D23: --max-job-memory did not apply to feed-forward renders (presets at 2048 px peaked at
    3249 MB under a 1024 MB limit). Their estimate now follows onnxruntime's arena, checked first."""
    srv = start_server(models_dir, max_job_memory=1024, max_side=2048)
    try:
        with DreamClient(srv.target) as c:
            t = time.monotonic()
            err = _refused(lambda: c.style(CONTENT, [], presets=[3], size=2048, timeout=30), "size",
                           grpc.StatusCode.RESOURCE_EXHAUSTED, "feed-forward painting")
            assert time.monotonic() - t < 1.0 and "--max-job-memory of 1,024 MB" in err.details
            assert c.style(CONTENT, [], presets=[3], size=256, timeout=30).startswith(b"\x89PNG")
    finally:
        srv.stop()


def _bytes_call(channel: grpc.Channel, method: str):
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


def test_each_method_has_a_receive_cap_checked_before_parsing(server):
    """D18: a 60 MiB GetJob was parsed (health stalled up to a second, RSS +780 MB) before anything
    looked at it. Methods without images now take 64 KiB, checked on the bytes; health too."""
    from grpc_health.v1 import health_pb2

    with grpc.insecure_channel(server.target, options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        cases = [("/dreamrender.v1.DreamRenderService/GetJob", pb.GetJobRequest(job_id="a" * (48 << 20))),
                 ("/dreamrender.v1.DreamRenderService/ListJobs", pb.ListJobsRequest(page_token="b" * (100 << 10))),
                 ("/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest(service="c" * (1 << 20)))]
        for method, request in cases:
            t = time.monotonic()
            with pytest.raises(grpc.RpcError) as err:
                _bytes_call(ch, method)(request.SerializeToString(), timeout=30)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (method, err.value)
            assert "more than this method takes (allowed: at most 65,536 bytes)" in err.value.details()
            assert time.monotonic() - t < 2.0
    with DreamClient(server.target) as c:  # the image-carrying methods keep the server's message cap
        assert c.style(CONTENT, [STYLE], **QUICK).startswith(b"\x89PNG")


def test_compressed_requests_are_refused_without_being_inflated(server):
    """D17: 200 MiB of zeros gzip-compressed to 200 KB was inflated in full before the size check,
    stalling health 400-610 ms per call. The server accepts identity only: UNIMPLEMENTED at once."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    bomb = pb.GetJobRequest(job_id="0" * (32 << 20)).SerializeToString()
    with grpc.insecure_channel(server.target, compression=grpc.Compression.Gzip,
                               options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        with pytest.raises(grpc.RpcError) as err:
            _bytes_call(ch, "/dreamrender.v1.DreamRenderService/GetJob")(bomb, timeout=30)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED and "gzip" in err.value.details()
    with grpc.insecure_channel(server.target) as ch:
        t = time.monotonic()
        assert health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1
        assert time.monotonic() - t < 1.0


def test_a_unary_call_ends_at_the_servers_deadline(models_dir):
    """Acceptance 4: no call waits forever. A unary call past --rpc-deadline gets DEADLINE_EXCEEDED
    whatever deadline its caller set, and an Evaluate cut off so stops before its next candidate."""
    srv = start_server(models_dir, rpc_deadline=0.5)
    gate, scored = threading.Event(), []
    original = srv.server.evaluator.scorer

    def held_scorer(*args, **kwargs):
        gate.wait(30)
        scorer = original(*args, **kwargs)
        real = scorer.candidate_terms
        scorer.candidate_terms = lambda *a, **k: scored.append(1) or real(*a, **k)
        return scorer

    srv.server.evaluator.scorer = held_scorer
    try:
        with DreamClient(srv.target) as c:
            t = time.monotonic()
            with pytest.raises(DreamError) as err:
                c.evaluate(CONTENT, [STYLE], [CONTENT, CONTENT], timeout=60)
            assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED and "--rpc-deadline" in err.value.details
            assert time.monotonic() - t < 3.0
            gate.set()
            deadline = time.monotonic() + 10
            while srv.scheduler.running() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not srv.scheduler.running() and scored == []  # stopped before its first candidate
            assert c.list_jobs().jobs is not None  # other calls go on
    finally:
        gate.set()
        srv.stop()
