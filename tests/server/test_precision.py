"""Precision through a real server: the request field, what progress and results report, ListModels."""
from __future__ import annotations

import grpc
import pytest
import torch

from dreamrender.client import DreamClient, DreamError, style_request
from dreamrender.server.engine import native_bf16
from dreamrender.v1 import dreamrender_pb2 as pb
from dreamrender.v1 import dreamrender_pb2_grpc as pb_grpc

from ..conftest import DATA


def test_list_models_says_whether_the_device_has_native_bf16(server):
    with DreamClient(server.target) as c:
        catalog = c.catalog(timeout=10)
    assert catalog.device == "cpu"
    assert catalog.native_bf16 == native_bf16(torch.device("cpu"))


@pytest.mark.parametrize("precision", ["fp32", "bf16", "auto"])
def test_progress_and_result_report_the_precision_used(server, chelsea_bytes, precision):
    expected = precision if precision != "auto" else ("bf16" if native_bf16(torch.device("cpu")) else "fp32")
    with DreamClient(server.target) as c:
        style = list(c.render_style(chelsea_bytes, [DATA / "starry_small.png"], size=48, scales=1, iterations=3,
                                    precision=precision, timeout=60))
        dream = list(c.render_dream(chelsea_bytes, octaves=1, steps=2, precision=precision, timeout=60))
    for events in (style, dream):
        assert {e.precision for e in events if isinstance(e, pb.Progress)} == {expected}
        assert events[-1].stats.precision == expected


def test_unset_precision_is_auto(server, chelsea_bytes):
    with DreamClient(server.target) as c:
        events = list(c.render_dream(chelsea_bytes, octaves=1, steps=1, timeout=60))
    assert events[-1].stats.precision == ("bf16" if native_bf16(torch.device("cpu")) else "fp32")


def test_bad_precision_is_invalid_argument_naming_the_field(server, chelsea_bytes):
    req = style_request(chelsea_bytes, [chelsea_bytes])
    req.precision = 9  # a value this server does not know
    with grpc.insecure_channel(server.target) as ch, pytest.raises(grpc.RpcError) as err:
        list(pb_grpc.DreamRenderServiceStub(ch).RenderStyle(req, timeout=30))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "precision" in err.value.details()
    with DreamClient(server.target) as c, pytest.raises(DreamError) as derr:
        list(c.render_style(chelsea_bytes, [DATA / "starry_small.png"], method="feed_forward", precision="bf16",
                            timeout=30))
    assert derr.value.code == grpc.StatusCode.INVALID_ARGUMENT and derr.value.violations[0][0] == "precision"
