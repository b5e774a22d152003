"""Style masks through a real server (#27): Gatys and feed-forward regions, label colours, every refusal."""
from __future__ import annotations

import io
import subprocess

import grpc
import numpy as np
import pytest
from PIL import Image

from dreamrender.client import DreamClient, DreamError, evaluate_request
from dreamrender.v1 import dreamrender_pb2_grpc as pb_grpc

from ..conftest import BIN, DATA, start_server
from .test_dream_features import _mask_png
from .test_hardening import png_header

GATYS = dict(size=64, scales=1, iterations=8, timeout=120)


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


@pytest.fixture(scope="module")
def images() -> dict[str, bytes]:
    return {name: (DATA / f"{name}_small.png").read_bytes() for name in ("chelsea", "starry", "scream")}


def _photo_at(photo: bytes, size: tuple[int, int]) -> np.ndarray:
    img = Image.open(io.BytesIO(photo)).convert("RGB")
    return np.asarray(img.resize(size, Image.Resampling.BILINEAR)).astype(int)


def test_gatys_regions_keep_the_unmasked_content(server, images):
    """One style masked to the left half: the right half stays near the photo, far nearer than an
    unmasked render's; a second style masked to the right (with a source mask) paints it."""
    w, h = Image.open(io.BytesIO(images["chelsea"])).size
    with DreamClient(server.target) as c:
        plain = _pixels(c.style(images["chelsea"], [images["starry"]], style_weight=1.0, **GATYS))
        left = _pixels(c.style(images["chelsea"], [images["starry"]], masks=[_mask_png(w, h)], style_weight=1.0,
                               **GATYS))
        sw, sh = Image.open(io.BytesIO(images["scream"])).size
        two = _pixels(c.style(images["chelsea"], [images["starry"], images["scream"]], style_weight=1.0,
                              masks=[_mask_png(w, h), _mask_png(w, h, fill=255, left=0)],
                              source_masks=[None, _mask_png(sw, sh)], **GATYS))
    photo = _photo_at(images["chelsea"], left.shape[1::-1])
    right = slice(left.shape[1] * 3 // 4, None)
    kept, painted = np.abs(left - photo)[:, right].mean(), np.abs(plain - photo)[:, right].mean()
    assert kept * 2 < painted
    assert np.abs(two - photo)[:, right].mean() > kept * 1.5


def test_feed_forward_regions_blend_over_the_photo(server, images):
    w, h = Image.open(io.BytesIO(images["chelsea"])).size
    with DreamClient(server.target) as c:
        preset = _pixels(c.style(images["chelsea"], [], presets=[4, 20], masks=[_mask_png(w, h)], size=64,
                                 timeout=60))
        arbitrary = _pixels(c.style(images["chelsea"], [images["starry"]], method="feed_forward",
                                    masks=[_mask_png(w // 2, h // 2, fill=0, left=255)], size=64, timeout=60))
        whole = _pixels(c.style(images["chelsea"], [], presets=[4], size=64, timeout=60))
    photo = _photo_at(images["chelsea"], preset.shape[1::-1])
    right = slice(preset.shape[1] * 3 // 4, None)
    # Preset 20 (no mask) covers everything; preset 4 only the left: the right half is preset 20 alone.
    assert np.abs(preset - whole)[:, : preset.shape[1] // 4].mean() < np.abs(preset - whole)[:, right].mean()
    assert np.abs(arbitrary - photo)[:, right].max() <= 2  # no mask there: the photo
    assert np.abs(arbitrary - photo)[:, : arbitrary.shape[1] // 4].mean() > 10


def test_init_feed_forward_and_label_colours(server, images, tmp_path):
    """A Gatys render from a masked feed-forward start; masks split from a label image by dreamctl."""
    w, h = Image.open(io.BytesIO(images["chelsea"])).size
    labels = np.zeros((h, w, 3), np.uint8)
    labels[:, : w // 2] = (255, 0, 0)
    labels[:, w // 2:] = (0, 0, 255)
    Image.fromarray(labels).save(tmp_path / "labels.png")
    for name in ("chelsea", "starry", "scream"):
        (tmp_path / f"{name}.png").write_bytes(images[name])
    base = [str(BIN / "dreamctl"), "--server", server.target, "style", str(tmp_path / "chelsea.png"),
            str(tmp_path / "starry.png"), str(tmp_path / "scream.png"), "--size", "64", "--iterations", "4",
            "--init", "feed-forward"]
    r = subprocess.run([*base, "--mask-colors", str(tmp_path / "labels.png"), "-o", str(tmp_path / "out.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "out.png").size == (64, 43)
    r = subprocess.run([*base, "--mask-colors", str(tmp_path / "labels.png"), "--label-colors", "#ff0000",
                        "0,0,255", "0,255,0", "-o", str(tmp_path / "x.png")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "3 listed colours for 2 styles" in r.stderr and "\n" not in r.stderr.strip()
    (tmp_path / "m.png").write_bytes(_mask_png(w, h))
    r = subprocess.run([*base, *["--mask", str(tmp_path / "m.png")] * 3, "-o", str(tmp_path / "x.png")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "masks: 3 masks for 2 styles" in r.stderr


def _refused(c: DreamClient, field: str, words: str, content: bytes, styles: list, **kwargs) -> None:
    with pytest.raises(DreamError) as err:
        c.style(content, styles, **{"timeout": 60, **kwargs})
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT, err.value
    assert words in err.value.details and [v[0] for v in err.value.violations] == [field], err.value


def test_bad_masks_are_refused_naming_the_field(server, images):
    w, h = Image.open(io.BytesIO(images["chelsea"])).size
    sw, sh = Image.open(io.BytesIO(images["starry"])).size
    content, starry = images["chelsea"], images["starry"]
    with DreamClient(server.target) as c:
        _refused(c, "styles[1].mask", f"a {w}x{w} mask for a {w}x{h} image", content, [starry, starry],
                 masks=[None, _mask_png(w, w)], **GATYS)
        _refused(c, "styles[0].mask", "all black", content, [starry], masks=[_mask_png(w, h, left=0)], **GATYS)
        _refused(c, "styles[0].source_mask", f"for a {sw}x{sh} image", content, [starry],
                 source_masks=[_mask_png(sw * 2, sh)], **GATYS)
        _refused(c, "presets[0].mask", "all black", content, [], presets=[3], masks=[_mask_png(w, h, left=0)])
        _refused(c, "styles[0].source_mask", "method optimize", content, [starry], method="feed_forward",
                 source_masks=[_mask_png(sw, sh)])
    # Evaluate takes no masks (through the raw stub: the SDK's evaluate has no mask argument).
    req = evaluate_request(content, [starry], [content])
    req.styles[0].mask.data = _mask_png(w, h)
    with grpc.insecure_channel(server.target) as channel:
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.DreamRenderServiceStub(channel).Evaluate(req, timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "styles[0].mask" in err.value.details() and "Evaluate scores whole pictures" in err.value.details()


def test_a_mask_over_the_pixel_limit_is_refused_from_its_header(models_dir, images):
    srv = start_server(models_dir, max_input_pixels=1_000_000)
    try:
        w, h = Image.open(io.BytesIO(images["chelsea"])).size
        with DreamClient(srv.target) as c:
            _refused(c, "styles[0].mask", "over the server's pixel limit", images["chelsea"], [images["starry"]],
                     masks=[png_header(w * 16, h * 16)], **GATYS)
    finally:
        srv.stop()
