"""Request validation without a socket: the request module on its own, from limits and a store."""
from __future__ import annotations

import pytest

from dreamrender.client import dream_request, evaluate_request, style_request
from dreamrender.errors import InvalidArgumentError
from dreamrender.models import ModelStore, WeightsError
from dreamrender.server.requests import MAX_CANDIDATES, Limits, RequestReader
from dreamrender.v1 import dreamrender_pb2 as pb

from ..conftest import DATA


@pytest.fixture
def reader(tmp_path) -> RequestReader:
    return RequestReader(limits=Limits(max_input_pixels=1_000_000, max_side=256), store=ModelStore(tmp_path),
                         default_dream_model="tiny", default_style_model="tiny")


@pytest.fixture
def photo() -> bytes:
    return (DATA / "chelsea_small.png").read_bytes()


def _field(exc: pytest.ExceptionInfo) -> str:
    return exc.value.field


def test_dream_fills_the_model_default_layer_and_sizes_the_start(reader, photo):
    job = reader.dream(dream_request(photo, size=96, steps=3))
    assert job.settings.model == "tiny" and job.settings.steps == 3
    assert [t.layer for t in job.settings.terms] == ["relu3_1"]
    assert max(job.start.shape[-2:]) == 96 and job.start.shape[:2] == (1, 3)


@pytest.mark.parametrize("kwargs, field", [
    (dict(size=512), "size"),                        # over max_side
    (dict(layer="nope"), "terms[0].layer"),
    (dict(layer="relu1_1", channels=[99]), "terms[0].channels"),
    (dict(octaves=0), "octaves"),
    (dict(model="nonexistent"), "model"),
])
def test_dream_errors_name_the_field(reader, photo, kwargs, field):
    with pytest.raises(InvalidArgumentError) as err:
        reader.dream(dream_request(photo, **kwargs))
    assert _field(err) == field


def test_dream_without_start_or_with_bad_bytes(reader):
    with pytest.raises(InvalidArgumentError) as err:
        reader.dream(pb.RenderDreamRequest())
    assert _field(err) == "start"
    with pytest.raises(InvalidArgumentError) as err:
        reader.dream(dream_request(b"not an image"))
    assert _field(err) == "image"
    with pytest.raises(InvalidArgumentError) as err:
        reader.dream(dream_request(noise=(8, 64)))
    assert _field(err) == "noise.width"


def test_missing_weights_are_a_precondition(reader, photo):
    with pytest.raises(WeightsError, match="dreamctl models pull vgg16"):
        reader.dream(dream_request(photo, model="vgg16"))


def test_style_request(reader, photo):
    job = reader.style(style_request(photo, [photo, photo], style_weights=[1, 3], size=64))
    assert job.settings.size == 64 and [s.weight for s in job.settings.styles] == [1, 3]
    assert len(job.styles) == 2 and job.init_image is None
    for req, field in [(style_request(photo, [], size=64), "styles"),
                       (style_request(photo, [photo], style_weights=[0], size=64), "styles[0].weight"),
                       (style_request(photo, [b"xx"], size=64), "styles[0].image"),
                       (style_request(photo, [photo], size=64, init="image"), "init_image"),
                       (style_request(photo, [photo], style_layers=["conv9_9"], size=64), "style_layers[0].layer")]:
        with pytest.raises(InvalidArgumentError) as err:
            reader.style(req)
        assert _field(err) == field


def test_evaluate_request(reader, photo):
    job = reader.evaluate(evaluate_request(photo, [photo], [photo, photo]))
    assert len(job.candidates) == 2 and job.candidates[0].shape[:2] == (1, 3)
    with pytest.raises(InvalidArgumentError) as err:
        reader.evaluate(evaluate_request(photo, [photo], [photo] * (MAX_CANDIDATES + 1)))
    assert _field(err) == "candidates"
