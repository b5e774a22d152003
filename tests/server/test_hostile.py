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
