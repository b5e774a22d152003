"""Dreams on Inception v3 (stand-in weights with the real file's names and shapes) through a real
server: the tutorial's default objective, the 75 px minimum, tiles, the roll and guides."""
from __future__ import annotations

import grpc
import pytest

from dreamrender.client import DreamClient, DreamError, dream_request
from dreamrender.v1 import dreamrender_pb2 as pb

from .._standins import write_fid_inception
from ..conftest import DATA, start_server

GUIDE = DATA.parent.parent / "server" / "assets" / "starry_night.jpg"  # the test images are under 75 px high


@pytest.fixture(scope="module")
def inception_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("inception-store")
    write_fid_inception(root / "inception_v3" / "inception-2015-12-05.pt")
    srv = start_server(root, default_dream_model="inception_v3")
    yield srv
    srv.stop()


def test_inception_dreams_on_mixed3_and_mixed5_by_default(inception_server):
    reader = inception_server.server.servicer.requests
    job = reader.dream(dream_request((DATA / "chelsea_small.png").read_bytes(), size=160))
    assert [(t.layer, t.weight) for t in job.settings.terms] == [("mixed3", 1.0), ("mixed5", 1.0)]
    with DreamClient(inception_server.target) as c:
        events = list(c.render_dream(DATA / "chelsea_small.png", size=160, octaves=2, steps=2, timeout=120))
        listed = {m.name: m for m in c.list_models(timeout=10)}
    assert isinstance(events[-1], pb.Result) and (events[-1].stats.width, events[-1].stats.height) == (160, 107)
    assert listed["inception_v3"].default_dream_layer == "mixed3+mixed5" and listed["inception_v3"].available


def test_inception_tiles_rolls_guides_and_any_mixed_layer(inception_server):
    with DreamClient(inception_server.target) as c:
        result = list(c.render_dream(DATA / "chelsea_small.png", size=200, octaves=1, steps=2, tile_size=150,
                                     layer="mixed7", guide=GUIDE, timeout=120))[-1]
    assert isinstance(result, pb.Result) and result.stats.width == 200


@pytest.mark.parametrize("kwargs,field,allowed", [
    (dict(size=70), "size", "at least 75 px"),  # shorter side 47 px: below the unpadded stem's minimum
    (dict(size=200, tile_size=100), "tile_size", "at least 150"),  # tiles of 100 could be 50 px wide
])
def test_too_small_for_inception_names_the_smallest_that_works(inception_server, kwargs, field, allowed):
    with DreamClient(inception_server.target) as c:
        with pytest.raises(DreamError) as err:
            c.dream(DATA / "chelsea_small.png", octaves=1, steps=1, timeout=60, **kwargs)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and allowed in err.value.details
    assert err.value.violations[0][0] == field


@pytest.fixture(scope="module")
def vgg19_server(tmp_path_factory):
    from .._standins import write_keras_vgg19_h5
    from .._tiny_ff import write_tiny_feed_forward

    root = tmp_path_factory.mktemp("vgg19-store")
    write_keras_vgg19_h5(root / "vgg19" / "vgg19-keras-imagenet.h5")
    write_tiny_feed_forward(root)
    srv = start_server(root, default_style_model="vgg19")
    yield srv
    srv.stop()


def test_vgg19_styles_tiled_in_bf16_from_the_feed_forward_painting_and_evaluates(vgg19_server):
    content, style = DATA / "chelsea_small.png", DATA / "starry_small.png"
    with DreamClient(vgg19_server.target) as c:
        events = list(c.render_style(content, [style], model="vgg19", size=96, scales=1, iterations=3,
                                     tile_size=64, precision="bf16", init="feed_forward", timeout=180))
        scores = c.evaluate(content, [style], [DATA / "chelsea_small.png"], model="vgg19", timeout=180)
    result = events[-1]
    assert isinstance(result, pb.Result) and result.stats.model == "vgg19" and result.stats.precision == "bf16"
    assert next(e for e in events if isinstance(e, pb.Frame)).step == 0  # the painting came first
    assert scores[0]["content"] == 0 and scores[0]["style"] > 0
