"""Bad input, overload, cancellation, out-of-memory, large results, shutdown, metrics."""
from __future__ import annotations

import io
import os
import socket
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from pathlib import Path

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from dreamrender.client import DreamClient, DreamError
from dreamrender.errors import InvalidArgumentError
from dreamrender.server import requests as request_module
from dreamrender.server.codec import decode_image, probe_image
from dreamrender.v1 import dreamrender_pb2 as pb

from ..conftest import DATA, Dreamd, free_port, start_server

FAST = dict(octaves=1, steps=2)
BIN = Path(sys.executable).parent


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one tiny IDAT (a decompression-bomb shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def photo() -> Image.Image:
    return Image.open(DATA / "chelsea_small.png").convert("RGB")


# -- images ------------------------------------------------------------------------------

def test_decompression_bomb_refused_from_the_header():
    t = time.perf_counter()
    with pytest.raises(InvalidArgumentError) as err:
        decode_image(png_header(60000, 60000), "image", max_pixels=4_000_000)
    assert err.value.field == "image" and "pixel limit" in str(err.value)
    assert time.perf_counter() - t < 1.0  # nothing was decoded


def test_exif_orientation_is_honoured():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    data = encoded(photo(), "JPEG", exif=exif.tobytes())
    assert decode_image(data, "image", max_pixels=10**7).size == (64, 96)


def _png_with_exif(orientation: int, *, after_pixels: bool) -> bytes:
    """The photo as a PNG with an eXIf chunk before the pixel data, or just before IEND."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    body = exif.tobytes()[6:]  # PNG's eXIf holds the TIFF block without JPEG's "Exif\0\0"
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    data = encoded(photo(), "PNG")
    at = data.index(b"IEND") - 4 if after_pixels else data.index(b"IDAT") - 4
    return data[:at] + chunk + data[at:]


@pytest.mark.parametrize("after_pixels, size", [(False, (64, 96)), (True, (96, 64))])
def test_png_orientation_counts_only_before_the_pixels(after_pixels, size):
    # Reaching an eXIf chunk after the pixels means decoding them all; the probe never does, and
    # decode_image follows the same rule so that the probed and decoded sizes agree.
    data = _png_with_exif(6, after_pixels=after_pixels)
    assert probe_image(data, "image", max_pixels=10**7) == size
    assert decode_image(data, "image", max_pixels=10**7).size == size


class _Decoded(BaseException):
    """Raised by a patched load(); a BaseException so that no `except Exception` can hide it."""


def test_probing_decodes_no_pixels(monkeypatch):
    def refuse(self):
        raise _Decoded("probe_image decoded the pixels")

    images = (encoded(photo(), "PNG"), _png_with_exif(6, after_pixels=True), encoded(photo(), "JPEG"),
              encoded(photo(), "WEBP"))
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    for data in images:
        assert probe_image(data, "image", max_pixels=10**7) in ((96, 64), (64, 96))


@pytest.mark.parametrize("make", [
    lambda: encoded(photo().convert("CMYK"), "JPEG"),
    lambda: encoded(photo().convert("P"), "PNG"),
    lambda: encoded(photo().convert("RGBA"), "PNG"),
    lambda: encoded(photo().convert("LA"), "PNG"),
    lambda: encoded(Image.fromarray((np.linspace(0, 65535, 96 * 64).reshape(64, 96)).astype(np.uint16)), "PNG"),
    lambda: encoded(photo(), "GIF", save_all=True, append_images=[photo().rotate(90)], duration=50),
    lambda: encoded(photo(), "WEBP"),
])
def test_unusual_images_are_converted(make):
    img = decode_image(make(), "image", max_pixels=10**7)
    assert img.mode == "RGB" and img.size == (96, 64)


def test_sixteen_bit_keeps_its_range():
    ramp = np.tile(np.linspace(0, 65535, 96), (64, 1)).astype(np.uint16)
    arr = np.asarray(decode_image(encoded(Image.fromarray(ramp), "PNG"), "image", max_pixels=10**7))
    assert arr[0, 0, 0] == 0 and arr[0, -1, 0] == 255 and 120 < arr[0, 48, 0] < 135


def test_rgba_is_composited_on_white():
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    assert np.asarray(decode_image(encoded(rgba, "PNG"), "image", max_pixels=10**7)).min() == 255


@pytest.mark.parametrize("data,media,field,needle", [
    (b"", "", "image", "empty"),
    (png_header(0, 10), "", "image", ""),
    (png_header(60000, 60000), "", "image", "pixel limit"),
    (encoded(Image.new("RGB", (40, 40)), "JPEG"), "image/png", "image.media_type", "image/jpeg"),
    (encoded(Image.new("RGB", (40, 40)), "PNG")[:60], "", "image", "cannot decode"),
    (b"GIF89a" + b"\x00" * 20, "", "image", ""),
])
def test_bad_images_over_the_wire(server, data, media, field, needle):
    with DreamClient(server.target) as c, pytest.raises(DreamError) as err:
        list(c.render_dream(pb.Image(data=data, media_type=media), timeout=30))
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.violations[0][0] == field and needle in err.value.details


def test_bad_style_images_name_their_field(server, chelsea_bytes):
    with DreamClient(server.target) as c, pytest.raises(DreamError) as err:
        list(c.render_style(chelsea_bytes, [chelsea_bytes, b"junk"], size=64, timeout=30))
    assert err.value.violations[0][0] == "styles[1].image"
    with DreamClient(server.target) as c, pytest.raises(DreamError) as err:
        list(c.render_style(b"junk", [chelsea_bytes], size=64, timeout=30))
    assert err.value.violations[0][0] == "content"


# -- property-based: nothing but InvalidArgumentError escapes validation and decoding ----

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048), st.sampled_from(["", "image/png", "image/jpeg", "text/plain"]))
def test_decoder_never_crashes(data, media):
    try:
        img = decode_image(data, "image", max_pixels=1_000_000, media_type=media)
    except InvalidArgumentError as exc:
        assert exc.field in ("image", "image.media_type")
    else:
        assert img.mode == "RGB"


_dream_fields = st.fixed_dictionaries({}, optional={
    "octaves": st.integers(0, 2**32 - 1), "octave_scale": st.floats(allow_nan=True, allow_infinity=True),
    "steps": st.integers(0, 2**32 - 1), "step_size": st.floats(allow_nan=True, allow_infinity=True),
    "tile_size": st.integers(0, 2**32 - 1), "jitter": st.integers(0, 2**32 - 1), "seed": st.integers(0, 2**64 - 1),
    "size": st.integers(0, 2**32 - 1), "objective": st.integers(0, 5), "gradient_norm": st.integers(0, 5),
})


@settings(max_examples=300, deadline=None)
@given(_dream_fields, st.lists(st.tuples(st.text(max_size=8), st.lists(st.integers(0, 2**32 - 1), max_size=3),
                                         st.floats(allow_nan=True)), max_size=3))
def test_dream_validator_never_crashes(fields, terms):
    req = pb.RenderDreamRequest(**fields)
    for layer, chans, weight in terms:
        req.terms.add(layer=layer, channels=chans, weight=weight)
    try:
        s = request_module.dream_settings(req, default_model="tiny")
    except InvalidArgumentError as exc:
        assert exc.field
    else:
        assert s.octaves >= 1 and 1 < s.octave_scale <= 4 and s.step_size > 0


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "size": st.integers(0, 2**32 - 1), "scales": st.integers(0, 2**32 - 1), "iterations": st.integers(0, 2**32 - 1),
    "optimizer": st.integers(0, 4), "learning_rate": st.floats(allow_nan=True), "content_weight": st.floats(),
    "style_weight": st.floats(allow_nan=True), "tv_weight": st.floats(), "init": st.integers(0, 5),
    "pooling": st.integers(0, 4)}), st.lists(st.tuples(st.floats(allow_nan=True), st.floats(allow_nan=True)), max_size=3))
def test_style_validator_never_crashes(fields, styles):
    req = pb.RenderStyleRequest(**fields)
    for w, sc in styles:
        req.styles.add(weight=w, scale=sc)
    try:
        s = request_module.style_settings(req, default_model="tiny")
    except InvalidArgumentError as exc:
        assert exc.field
    else:
        assert s.size >= 16 and all(x.weight >= 0 and 0 < x.scale <= 8 for x in s.styles)


# -- overload, cancellation, memory ------------------------------------------------------

def test_overload_excess_refused_accepted_all_complete(models_dir, chelsea_bytes):
    srv = start_server(models_dir, max_queue=2)
    results: list[object] = []
    lock = threading.Lock()

    def call() -> None:
        with DreamClient(srv.target) as c:
            try:
                out = c.dream(chelsea_bytes, octaves=1, steps=40, timeout=120)
            except DreamError as err:
                out = err
        with lock:
            results.append(out)

    try:
        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
    finally:
        srv.stop()
    refused = [r for r in results if isinstance(r, DreamError)]
    done = [r for r in results if isinstance(r, bytes)]
    assert len(results) == 8 and len(done) >= 3 and refused
    assert all(r.code == grpc.StatusCode.RESOURCE_EXHAUSTED and r.retry_after is not None for r in refused)
    assert all(Image.open(io.BytesIO(d)).size == (96, 64) for d in done)


def _rss_mb() -> float:
    """This process's resident memory after a collection and a heap trim: what is still held, not
    the freed pages glibc keeps (which depend on what ran before in this worker, not on a leak)."""
    import gc

    from dreamrender.server.memory import trim_heap

    gc.collect()
    trim_heap()
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def test_cancel_and_repeat_keeps_memory_and_threads_flat(server):
    def once() -> None:
        with DreamClient(server.target) as c:
            stream = c.render_dream(noise=(384, 384), octaves=1, steps=1000, timeout=60)
            for ev in stream:
                if isinstance(ev, pb.Progress) and ev.step >= 2:
                    break
            stream.close()
        deadline = time.monotonic() + 10
        while server.scheduler.active and time.monotonic() < deadline:
            time.sleep(0.01)

    for _ in range(3):  # warm-up: allocator pools, model cache, channel threads
        once()
    rss0, threads0 = _rss_mb(), threading.active_count()
    for _ in range(12):
        once()
    rss1, threads1 = _rss_mb(), threading.active_count()
    assert rss1 - rss0 < 30 and threads1 <= threads0 + 1, (rss0, rss1, threads0, threads1)


def test_out_of_memory_is_resource_exhausted_and_server_goes_on(server, chelsea_bytes, monkeypatch):
    import dreamrender.server.servicer as service

    def boom(*_a, **_k):
        raise MemoryError

    monkeypatch.setattr(service, "render_dream", boom)
    with DreamClient(server.target) as c:
        with pytest.raises(DreamError) as err:
            c.dream(chelsea_bytes, timeout=30)
        assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "smaller size" in err.value.details
        monkeypatch.undo()
        assert c.dream(chelsea_bytes, timeout=30, **FAST).startswith(b"\x89PNG")


def test_a_result_over_the_message_limit_arrives_whole_in_chunks(models_dir):
    # 1 MiB messages and a 2048 px noise dream (a PNG of ~12 MB): the same chunking as a 4096 px
    # result under the default 64 MiB, at a quarter of the pixels.
    srv = start_server(models_dir, max_side=2048, max_message_mb=1)
    try:
        with DreamClient(srv.target, max_message_bytes=1 << 20) as c:
            events = list(c.render_dream(noise=(2048, 2048), octaves=1, steps=1, tile_size=1024, jitter=0,
                                         preview={"every": 0, "max_side": 64}, timeout=600))
    finally:
        srv.stop()
    result = events[-1]
    assert isinstance(result, pb.Result) and len(result.image.data) > 4 << 20
    assert Image.open(io.BytesIO(result.image.data)).size == (2048, 2048)
    assert not any(isinstance(e, pb.ResultChunk) for e in events)  # the SDK joined them


# -- metrics and shutdown ------------------------------------------------------------------

def test_metrics_move_after_a_render(models_dir, chelsea_bytes):
    srv = start_server(models_dir, metrics_port=0)
    try:
        url = f"http://127.0.0.1:{srv.server.metrics_port}/metrics"
        before = urllib.request.urlopen(url, timeout=10).read().decode()
        with DreamClient(srv.target) as c:
            c.dream(chelsea_bytes, timeout=60, **FAST)
            with pytest.raises(DreamError):
                c.dream(chelsea_bytes, layer="nope", timeout=60)
            c.list_models(timeout=10)
        # No sleep or polling: the interceptor counts a call before its status goes out.
        after = urllib.request.urlopen(url, timeout=10).read().decode()
    finally:
        srv.stop()
    assert 'dreamrender_requests_total{code="OK",rpc="RenderDream"} 1.0' in after
    assert 'dreamrender_requests_total{code="INVALID_ARGUMENT",rpc="RenderDream"} 1.0' in after
    assert 'dreamrender_requests_total{code="OK",rpc="ListModels"} 1.0' in after
    assert 'dreamrender_iterations_total{rpc="RenderDream"} 2.0' in after
    assert "dreamrender_render_seconds_count" in after and "dreamrender_queue_depth" in after
    assert "dreamrender_model_load_seconds" in after and "dreamrender_active_jobs" in after
    assert "dreamrender_requests_total{" not in before
    with pytest.raises(OSError):  # a stopped server releases its metrics endpoint
        urllib.request.urlopen(url, timeout=2)


def test_metrics_count_a_cancelled_render_as_cancelled(models_dir):
    srv = start_server(models_dir, metrics_port=0)
    line = 'dreamrender_requests_total{code="CANCELLED",rpc="RenderDream"} 1.0'
    try:
        url = f"http://127.0.0.1:{srv.server.metrics_port}/metrics"
        with DreamClient(srv.target) as c:
            for ev in c.render_dream(noise=(256, 256), model="tiny", octaves=1, steps=500, timeout=60):
                if isinstance(ev, pb.Progress):
                    break  # cancels the call
        # The server hears of a cancel after the client has moved on: poll, with a deadline.
        deadline = time.monotonic() + 20
        text = ""
        while line not in text and time.monotonic() < deadline:
            text = urllib.request.urlopen(url, timeout=10).read().decode()
            time.sleep(0.05)
    finally:
        srv.stop()
    assert line in text
    assert 'code="OK",rpc="RenderDream"' not in text


def _start_dreamd(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    d = Dreamd(tmp_path, *extra)
    return d.proc, d.target


class _BackgroundRender:
    """A tiny-model dream on its own thread. `running` is set at the first progress event (or when
    the call ends early); `outcome` is then the PNG or the DreamError the call ended with."""

    def __init__(self, target: str, side: int, steps: int, timeout: float) -> None:
        self.running = threading.Event()
        self.outcome: bytes | DreamError | None = None
        self.thread = threading.Thread(target=self._run, args=(target, side, steps, timeout))
        self.thread.start()

    def _run(self, target: str, side: int, steps: int, timeout: float) -> None:
        try:
            with DreamClient(target) as c:
                for ev in c.render_dream(noise=(side, side), model="tiny", octaves=1, steps=steps, timeout=timeout):
                    if isinstance(ev, pb.Progress):
                        self.running.set()
                    elif isinstance(ev, pb.Result):
                        self.outcome = ev.image.data
        except DreamError as err:
            self.outcome = err
        finally:
            self.running.set()


def test_sigterm_drains_then_stops_with_a_clear_status(tmp_path):
    proc, target = _start_dreamd(tmp_path, "--grace", "3")
    long = _BackgroundRender(target, 512, steps=1000, timeout=120)
    # SIGTERM only once the render is running: a fixed sleep raced a slow start on a loaded CI machine.
    assert long.running.wait(60)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with DreamClient(target) as c:
        with pytest.raises(DreamError) as err:
            c.dream(noise=(64, 64), model="tiny", timeout=10, **FAST)
    assert err.value.code == grpc.StatusCode.UNAVAILABLE
    long.thread.join(30)
    assert proc.wait(30) == 0
    assert isinstance(long.outcome, DreamError) and long.outcome.code == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in long.outcome.details


def test_sigterm_lets_a_short_render_finish(tmp_path):
    proc, target = _start_dreamd(tmp_path, "--grace", "20")
    short = _BackgroundRender(target, 256, steps=150, timeout=60)
    assert short.running.wait(60)  # running: the drain must let it finish
    proc.send_signal(signal.SIGTERM)
    short.thread.join(60)
    assert proc.wait(60) == 0
    assert isinstance(short.outcome, bytes) and short.outcome.startswith(b"\x89PNG")


def test_keep_heap_then_release_between_jobs():
    """dreamd's glibc settings take (on glibc) and the between-jobs release still hands memory back."""
    import ctypes

    from dreamrender.server.memory import keep_heap, release_memory

    try:
        ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        pytest.skip("not glibc")
    assert keep_heap() is True

    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    before = rss_mb()
    blocks = [bytearray(8 << 20) for _ in range(32)]  # 256 MiB, touched
    del blocks
    kept = rss_mb()
    release_memory()
    released = rss_mb()
    assert kept - before > 200  # kept for reuse, not unmapped on free
    assert kept - released > 200  # handed back between jobs


def _reaches(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("flags, open_to_all", [((), False), (("--metrics-address", "0.0.0.0"), True),
                                                (("--metrics-addr", "0.0.0.0"), True)],
                         ids=["default-loopback", "metrics-address", "deprecated-metrics-addr"])
def test_metrics_bind_loopback_unless_told(tmp_path, flags, open_to_all):
    # 127.0.0.2 is loopback too, but a socket bound to 127.0.0.1 alone does not answer on it.
    port = free_port()
    d = Dreamd(tmp_path, "--metrics-port", str(port), *flags)
    try:
        assert _reaches("127.0.0.1", port)
        assert _reaches("127.0.0.2", port) is open_to_all
    finally:
        d.stop()
    err = d.log()
    assert ("--metrics-addr is deprecated; use --metrics-address" in err) is ("--metrics-addr" in flags)
