"""Dreams, round two, through a real server on 127.0.0.1 and through dreamctl: guided dreams,
zoom animations, Laplacian normalisation, the strongest channels, the multi-term CLI, and the
errors each new option can raise."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from dreamrender.client import DreamClient, DreamError
from dreamrender.settings import DreamTerm
from dreamrender.v1 import dreamrender_pb2 as pb

from ..conftest import DATA, start_server

BIN = Path(sys.executable).parent
FAST = dict(octaves=1, steps=2, seed=5, tile_size=64)


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


def _result(events: list) -> pb.Result:
    return next(e for e in events if isinstance(e, pb.Result))


def test_guided_dream_grows_the_guide_and_differs(server, chelsea_bytes):
    with DreamClient(server.target) as c:
        plain = c.dream(chelsea_bytes, timeout=60, **FAST)
        guided = c.dream(chelsea_bytes, guide=DATA / "starry_small.png", timeout=60, **FAST)
    a, b = (np.asarray(Image.open(io.BytesIO(x)), dtype=float) for x in (plain, guided))
    assert a.shape == b.shape and np.abs(a - b).mean() > 1.0


@pytest.mark.parametrize("fmt, media", [(None, "image/webp"), ("gif", "image/gif")])
def test_zoom_animation_arrives_as_an_animated_file(server, chelsea_bytes, fmt, media):
    with DreamClient(server.target) as c:
        events = list(c.render_dream(chelsea_bytes, zoom_frames=5, zoom=1.1, rotate=1.0, result_format=fmt,
                                     timeout=120, **FAST))
    result = _result(events)
    assert result.image.media_type == media
    anim = Image.open(io.BytesIO(result.image.data))
    assert anim.n_frames == 5 and anim.size == (96, 64)
    frames = [e for e in events if isinstance(e, pb.Frame) and e.stage == "frame"]
    assert [f.stage_index for f in frames] == [0, 1, 2, 3, 4]  # each finished frame streams as it is made
    last = [e for e in events if isinstance(e, pb.Progress)][-1]
    assert last.step == last.total_steps == 2 + 4 * 2


def test_strongest_channels_are_reported_in_the_first_progress(server, chelsea_bytes):
    with DreamClient(server.target) as c:
        events = list(c.render_dream(chelsea_bytes, terms=[DreamTerm("relu2_1", strongest=3),
                                                           DreamTerm("relu3_1", weight=0.5)], timeout=60, **FAST))
    progress = [e for e in events if isinstance(e, pb.Progress)]
    first = progress[0].terms
    assert first[0].layer == "relu2_1" and first[0].strongest == 3 and len(first[0].channels) == 3
    assert first[1].layer == "relu3_1" and first[1].weight == 0.5 and not progress[1].terms


def test_laplacian_dream_renders(server, chelsea_bytes):
    with DreamClient(server.target) as c:
        png = c.dream(chelsea_bytes, gradient_norm="laplacian", lap_levels=3, timeout=60, **FAST)
    assert Image.open(io.BytesIO(png)).size == (96, 64)


@pytest.mark.parametrize("kwargs, field", [
    (dict(guide=b"not an image"), "guide"),
    (dict(guide=_png(600, 6)), "guide"),  # too elongated for the network at the guide's size
    (dict(zoom_frames=3, zoom=3.0), "zoom"),
    (dict(zoom_frames=3, zoom=0.4), "zoom"),
    (dict(zoom_frames=50), "zoom_frames"),
    (dict(gradient_norm="laplacian", lap_levels=8), "lap_levels"),
    (dict(terms=[DreamTerm("relu2_1", strongest=10_000)]), "terms[0].strongest"),
    (dict(terms=[DreamTerm("relu2_1", channels=(1,), strongest=2)]), "terms[0].strongest"),
    (dict(zoom_frames=3, result_format="png"), "result_format"),
    (dict(result_format="webp"), "result_format"),
])
def test_each_new_option_is_checked(models_dir, chelsea_bytes, kwargs, field):
    srv = start_server(models_dir, max_frames=10)
    try:
        with DreamClient(srv.target) as c, pytest.raises(DreamError) as err:
            c.dream(chelsea_bytes, timeout=30, **{**FAST, **kwargs})
    finally:
        srv.stop()
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [v[0] for v in err.value.violations], err.value.details


def _dreamctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dreamctl"), *args], capture_output=True, text=True, timeout=120)


def test_dreamctl_two_weighted_layers_and_strongest(server, tmp_path):
    out = tmp_path / "two.png"
    r = _dreamctl("--server", server.target, "dream", str(DATA / "chelsea_small.png"), "-o", str(out),
                  "--layer", "relu3_1:1", "--layer", "relu2_1:0.5", "--strongest", "relu2_1=3",
                  "--channels", "relu1_1=0,2", "--octaves", "1", "--steps", "2", "--tile", "64")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stderr.splitlines() if x.startswith("objective:"))
    assert "relu3_1 x1" in line and "relu2_1 x0.5 strongest 3: channels" in line and "relu1_1 x1: channels 0,2" in line
    assert Image.open(out).size == (96, 64)


def test_dreamctl_zoom_frames_writes_an_animation(server, tmp_path):
    out = tmp_path / "zoom.webp"
    r = _dreamctl("--server", server.target, "dream", str(DATA / "chelsea_small.png"), "-o", str(out),
                  "--zoom-frames", "4", "--zoom", "1.05", "--rotate", "0.5", "--octaves", "1", "--steps", "2",
                  "--tile", "64", "--frames", str(tmp_path / "frames"))
    assert r.returncode == 0, r.stderr
    assert Image.open(out).n_frames == 4
    assert len(list((tmp_path / "frames").glob("frame_*"))) >= 4


def test_dreamctl_help_shows_the_objective_examples():
    r = _dreamctl("dream", "--help")
    assert "--layer relu4_3:1 --layer relu3_3:0.5" in r.stdout and "--zoom-frames" in r.stdout


@pytest.mark.parametrize("fmt", ["webp", "gif"])
def test_animation_writer_spools_frames_to_disk_and_writes_them_all(fmt):
    from dreamrender.server.codec import AnimationWriter

    writer = AnimationWriter(fmt, 50)
    rng = np.random.default_rng(0)
    frames = [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(6)]
    frames[3][10:20, 10:20] = rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)
    for f in frames:
        writer.add(f)
    assert writer._spool.tell() > 0  # the encoded frames are in the temporary file, not in memory
    data, media = writer.finish()
    anim = Image.open(io.BytesIO(data))
    assert media == f"image/{fmt}" and anim.n_frames == 6 and anim.size == (64, 48)
    anim.seek(5)
    assert abs(np.asarray(anim.convert("RGB"), dtype=float).mean() - 200) < 3  # the last frame, in order
    assert writer._spool.closed


def test_an_animation_encoder_failure_names_the_encoder_and_its_error():
    """The encoder runs in a process of its own (#28 D21); when it fails, its last line comes back
    in the error rather than an empty result."""
    from dreamrender.server.codec import AnimationWriter

    writer = AnimationWriter("gif", 50)
    writer.add(np.zeros((8, 8, 3), np.uint8))
    writer._spool.write(b"not a png")
    writer._spans.append((writer._spans[0][1], 9))
    with pytest.raises(RuntimeError, match="the gif encoder failed: .*cannot identify image file"):
        writer.finish()
    assert writer._spool.closed


def _mask_png(width: int, height: int, fill: int = 0, left: int = 255) -> bytes:
    """A grey mask: `left` on its left half, `fill` elsewhere."""
    a = np.full((height, width), fill, np.uint8)
    a[:, : width // 2] = left
    buf = io.BytesIO()
    Image.fromarray(a, "L").save(buf, format="PNG")
    return buf.getvalue()


def test_a_masked_dream_keeps_the_unmasked_side_and_bad_masks_name_the_field(server, chelsea_bytes):
    w, h = Image.open(io.BytesIO(chelsea_bytes)).size
    with DreamClient(server.target) as c:
        # A mask at half the photo's size (the same aspect) is resized; inverted, the right half dreams.
        out = c.dream(chelsea_bytes, mask=_mask_png(w // 2, h // 2), mask_invert=True, timeout=60, **FAST)
        photo = np.asarray(Image.open(io.BytesIO(chelsea_bytes)).convert("RGB")).astype(int)
        got = np.asarray(Image.open(io.BytesIO(out)).convert("RGB")).astype(int)
        diff = np.abs(got - photo)
        assert diff[:, : w // 4].max() <= 1 and diff[:, -(w // 4):].mean() > 0.5  # 2 steps: a light dream
        refusals = [(dict(mask=_mask_png(w, w)), f"a {w}x{w} mask for a {w}x{h} image"),
                    (dict(mask=_mask_png(w, h, left=0)), "all black"),
                    (dict(mask=_mask_png(w, h, fill=255), mask_invert=True), "all white")]
        for kwargs, words in refusals:
            with pytest.raises(DreamError) as err:
                c.dream(chelsea_bytes, timeout=60, **FAST, **kwargs)
            assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and words in err.value.details
            assert [v[0] for v in err.value.violations] == ["mask"]


def test_dreamctl_dreams_through_a_mask(server, chelsea_bytes, tmp_path):
    w, h = Image.open(io.BytesIO(chelsea_bytes)).size
    (tmp_path / "in.png").write_bytes(chelsea_bytes)
    (tmp_path / "mask.png").write_bytes(_mask_png(w, h))
    r = subprocess.run([str(BIN / "dreamctl"), "--server", server.target, "dream", str(tmp_path / "in.png"),
                        "--mask", str(tmp_path / "mask.png"), "--octaves", "1", "--steps", "2",
                        "-o", str(tmp_path / "out.png")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = np.asarray(Image.open(tmp_path / "out.png").convert("RGB")).astype(int)
    photo = np.asarray(Image.open(io.BytesIO(chelsea_bytes)).convert("RGB")).astype(int)
    assert np.abs(got - photo)[:, -(w // 4):].max() <= 1  # the mask's dark half is the photo
