"""Feed-forward style through a real server: the stream, presets, a painted start, and every error."""
from __future__ import annotations

import io

import grpc
import pytest
from PIL import Image

from dreamrender.client import DreamClient, DreamError
from dreamrender.v1 import dreamrender_pb2 as pb

from ..conftest import DATA, start_server


@pytest.fixture
def style_bytes() -> bytes:
    return (DATA / "starry_small.png").read_bytes()


def test_arbitrary_style_streams_a_frame_and_the_result(server, chelsea_bytes, style_bytes):
    with DreamClient(server.target) as c:
        events = list(c.render_style(chelsea_bytes, [style_bytes, chelsea_bytes], style_weights=[0.7, 0.3],
                                     method="feed_forward", strength=0.8, size=100, timeout=60))
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "Accepted" and kinds[-1] == "Result" and "Frame" in kinds and "Progress" in kinds
    result = events[-1]
    assert max(Image.open(io.BytesIO(result.image.data)).size) == 100
    assert result.stats.device.startswith("onnxruntime:") and result.stats.model == "arbitrary"


def test_presets_imply_feed_forward_and_are_listed(server, chelsea_bytes):
    with DreamClient(server.target) as c:
        info = {m.name: m for m in c.list_models()}
        assert info["multistyle26"].kind == "feed_forward" and [p.index for p in info["multistyle26"].presets] == \
            list(range(26))
        assert info["tiny"].kind == "features" and not info["tiny"].presets
        one = c.style(chelsea_bytes, [], presets=[4], size=64, timeout=60)
        blend = c.style(chelsea_bytes, [], presets=[(4, 0.5), (20, 0.5)], size=64, timeout=60)
    assert Image.open(io.BytesIO(one)).size == (64, 43) and one != blend


def test_scores_only_on_request(server, chelsea_bytes, style_bytes):
    with DreamClient(server.target) as c:
        plain = list(c.render_style(chelsea_bytes, [style_bytes], method="feed_forward", size=64, timeout=60))
        scored = list(c.render_style(chelsea_bytes, [style_bytes], method="feed_forward", feed_forward_scores=True,
                                     size=64, timeout=60))
    assert not any(isinstance(e, pb.CheckpointScores) for e in plain)
    scores = [e for e in scored if isinstance(e, pb.CheckpointScores)]
    assert scores and scores[0].values["total"] > 0 and isinstance(scored[-1], pb.Result)


def test_init_feed_forward_sends_the_painting_before_the_first_iteration(server, chelsea_bytes, style_bytes):
    with DreamClient(server.target) as c:
        events = list(c.render_style(chelsea_bytes, [style_bytes], init="feed_forward", size=128, scales=2,
                                     iterations=3, preview={"every": 0, "format": "png"}, timeout=120))
        painted = c.style(chelsea_bytes, [style_bytes], method="feed_forward", size=64, timeout=60)
    first_frame = next(i for i, e in enumerate(events) if isinstance(e, pb.Frame))
    first_progress = next(i for i, e in enumerate(events) if isinstance(e, pb.Progress))
    assert first_frame < first_progress and events[first_frame].step == 0
    frame = Image.open(io.BytesIO(events[first_frame].image.data))
    assert max(frame.size) == 128 // 2  # made at the first (coarse) scale's size
    photo = Image.open(io.BytesIO(chelsea_bytes)).convert("RGB").resize(frame.size)
    painting = Image.open(io.BytesIO(painted)).convert("RGB").resize(frame.size)
    def diff(a, b):
        return sum(abs(x - y) for x, y in zip(a.tobytes(), b.tobytes())) / len(a.tobytes())
    assert diff(frame.convert("RGB"), painting) < diff(frame.convert("RGB"), photo)  # the painting, not the photo
    assert isinstance(events[-1], pb.Result)


@pytest.mark.parametrize("kwargs, field", [
    (dict(styles=[], presets=[26]), "presets[0].index"),
    (dict(styles=[], presets=[(3, -1.0)]), "presets[0].weight"),
    (dict(styles=[], presets=[(3, 0.0), (4, 0.0)]), "presets"),
    (dict(styles="style", presets=[3]), "presets"),
    (dict(styles=[], method="feed_forward"), "styles"),
    (dict(styles="style", method="feed_forward", strength=1.5), "strength"),
    (dict(styles="style", method="optimize", presets=[3]), "presets"),
])
def test_bad_feed_forward_requests_name_the_field(server, chelsea_bytes, style_bytes, kwargs, field):
    styles = [style_bytes] if kwargs.pop("styles") == "style" else []
    with DreamClient(server.target) as c, pytest.raises(DreamError) as err:
        c.style(chelsea_bytes, styles, size=64, timeout=30, **kwargs)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _d in err.value.violations] == [field]


def test_missing_networks_are_a_failed_precondition_naming_the_pull(tmp_path, chelsea_bytes, style_bytes):
    srv = start_server(tmp_path)  # an empty store: no feed-forward files
    try:
        with DreamClient(srv.target) as c:
            for kwargs in (dict(styles=[style_bytes], method="feed_forward"), dict(styles=[], presets=[1]),
                           dict(styles=[style_bytes], init="feed_forward")):
                with pytest.raises(DreamError) as err:
                    c.style(chelsea_bytes, size=64, timeout=30, **kwargs)
                assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
                assert "dreamctl models pull" in err.value.details
    finally:
        srv.stop()
