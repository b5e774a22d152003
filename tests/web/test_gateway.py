"""dreamweb's HTTP API against a real dreamd (tiny networks): renders started from forms, their
events as SSE, jobs by token, errors with the field named, upload limits, CORS, TLS to dreamd."""
from __future__ import annotations

import io
import json

import httpx
import pytest
from PIL import Image

from dreamrender.settings import DreamSettings, StyleSettings

from ..conftest import DATA, start_server
from ..server.test_security import pki  # noqa: F401 (a fixture: certificates made for the test)
from .conftest import TOKENS, Gateway

ALICE, BOB = ({"Authorization": f"Bearer {t}"} for t in TOKENS)
PHOTO = (DATA / "chelsea_small.png").read_bytes()
FAST_DREAM = {"kind": "dream", "octaves": "2", "steps": "3", "preview.every": "1"}


def events(url: str, headers: dict, timeout: float = 60) -> list[tuple[str, dict]]:
    """Every SSE event of a job until the stream ends."""
    out = []
    with httpx.stream("GET", url, headers=headers, timeout=timeout) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in resp.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                out.append((name, json.loads(line[6:])))
    return out


def start(gw: Gateway, fields: dict, files: dict | None = None, headers: dict = ALICE) -> httpx.Response:
    files = {"image": ("photo.png", PHOTO, "image/png")} if files is None else files
    return httpx.post(gw.url + "api/renders", data=fields, files=files, headers=headers, timeout=60)


def test_options_derive_from_the_settings_dataclasses(gateway):
    opts = httpx.get(gateway.url + "api/options", headers=ALICE, timeout=30).json()
    dream = {s["name"]: s for s in opts["kinds"]["dream"]}
    style = {s["name"]: s for s in opts["kinds"]["style"]}
    assert dream["steps"]["default"] == DreamSettings.steps and dream["steps"]["max"] == 1000
    assert dream["objective"]["choices"] == ["mean", "mean_squared"]
    assert style["strength"]["default"] == StyleSettings.strength and style["preview.every"]["default"] == 10
    assert "sample" in opts["kinds"] and any(m["name"] == "tiny" for m in opts["models"])


def test_a_dream_streams_progress_frames_and_its_result(gateway):
    resp = start(gateway, FAST_DREAM)
    assert resp.status_code == 202, resp.text
    job = resp.json()["job_id"]
    seen = events(gateway.url + f"api/jobs/{job}/events", ALICE)
    names = [n for n, _ in seen]
    assert names[0] == "accepted" and names[-2:] == ["result", "end"], names
    frames = [d for n, d in seen if n == "frame"]
    assert frames and all(f["image"].startswith("data:image/jpeg;base64,") for f in frames)
    result = seen[-2][1]
    png = httpx.get(gateway.url + result["url"], headers=ALICE, timeout=30)
    assert png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (result["stats"]["width"], result["stats"]["height"])
    saved = httpx.get(gateway.url + result["url"] + "?download=1", headers=ALICE, timeout=30)
    assert saved.headers["content-disposition"] == f'attachment; filename="dreamrender-{job}.png"'
    # A finished job watched again (a reloaded page) replays its state and result.
    assert [n for n, _ in events(gateway.url + f"api/jobs/{job}/events", ALICE)][-2:] == ["result", "end"]
    assert httpx.get(gateway.url + f"api/jobs/{job}", headers=ALICE).json()["state"] == "succeeded"


def test_a_text_file_as_the_photo_gets_dreamds_invalid_argument(gateway):
    resp = start(gateway, FAST_DREAM, {"image": ("notes.png", b"just some text, not a picture\n", "image/png")})
    assert resp.status_code == 400
    err = resp.json()
    assert err["code"] == "INVALID_ARGUMENT" and "image" in err["message"]
    assert err["violations"] and err["violations"][0]["field"].startswith("image")


@pytest.mark.parametrize("fields, field", [({"kind": "dream", "steps": "many"}, "steps"),
                                           ({"kind": "dream", "colour": "red"}, "colour"),
                                           ({"kind": "painting"}, "kind"),
                                           ({"kind": "dream", "steps": "5000"}, "steps"),
                                           ({"kind": "style", "preset": "x"}, "preset")])
def test_bad_fields_are_named(gateway, fields, field):
    resp = start(gateway, fields)
    assert resp.status_code == 400, resp.text
    assert resp.json()["violations"][0]["field"] == field, resp.json()


def test_bad_list_queries_are_named(gateway):
    for query, field in (("page_size=many", "page_size"), ("state=sleeping", "state")):
        resp = httpx.get(gateway.url + f"api/jobs?{query}", headers=ALICE, timeout=30)
        assert resp.status_code == 400 and field in resp.json()["message"], resp.text


def test_tokens_do_not_see_each_others_jobs(gateway):
    job = start(gateway, FAST_DREAM).json()["job_id"]
    for path in (f"api/jobs/{job}", f"api/jobs/{job}/events", f"api/jobs/{job}/result"):
        resp = httpx.get(gateway.url + path, headers=BOB, timeout=30)
        assert resp.status_code == 404 and resp.json()["code"] == "NOT_FOUND", (path, resp.text)
    assert httpx.post(gateway.url + f"api/jobs/{job}/cancel", headers=BOB).status_code == 404
    assert job not in [j["job_id"] for j in httpx.get(gateway.url + "api/jobs", headers=BOB).json()["jobs"]]
    assert job in [j["job_id"] for j in httpx.get(gateway.url + "api/jobs", headers=ALICE).json()["jobs"]]
    events(gateway.url + f"api/jobs/{job}/events", ALICE)  # let it finish
    no_token = httpx.get(gateway.url + "api/jobs", timeout=30)
    assert no_token.status_code == 401 and no_token.json()["code"] == "UNAUTHENTICATED"


def test_cancel_ends_the_stream_cancelled(gateway):
    job = start(gateway, {"kind": "dream", "octaves": "4", "steps": "400", "size": "512"}).json()["job_id"]
    with httpx.stream("GET", gateway.url + f"api/jobs/{job}/events", headers=ALICE, timeout=60) as resp:
        lines = resp.iter_lines()
        assert next(lines) == "event: accepted"
        cancelled = httpx.post(gateway.url + f"api/jobs/{job}/cancel", headers=ALICE, timeout=30)
        assert cancelled.status_code == 200
        rest = list(lines)
    error = json.loads(next(x for i, x in enumerate(rest) if rest[i - 1] == "event: error")[6:])
    assert error["code"] == "CANCELLED"
    assert httpx.get(gateway.url + f"api/jobs/{job}", headers=ALICE).json()["state"] == "cancelled"


def test_the_token_never_reaches_the_log(gateway):
    start(gateway, FAST_DREAM)
    httpx.get(gateway.url + "api/jobs", headers=BOB)
    log = gateway.log
    assert "started dream job" in log and "GET /api/jobs" in log
    assert not any(t in log for t in TOKENS)


def test_uploads_over_the_limit_never_reach_dreamd(gateway):
    before = len(httpx.get(gateway.url + "api/jobs?page_size=1000", headers=ALICE).json()["jobs"])
    big = b"\0" * (3 << 20)  # the gateway's limit is 2 MiB
    resp = start(gateway, FAST_DREAM, {"image": ("big.png", big, "image/png")})
    assert resp.status_code == 413 and resp.json()["code"] == "RESOURCE_EXHAUSTED"

    def chunks():  # no Content-Length: the limit holds as the body streams
        yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        for _ in range(48):
            yield b"x" * 65536

    streamed = httpx.post(gateway.url + "api/renders", content=chunks(), timeout=30,
                          headers={**ALICE, "content-type": "multipart/form-data; boundary=b"})
    assert streamed.status_code == 413, streamed.text
    assert streamed.json() == resp.json()  # the same error whichever way the limit was found
    assert len(httpx.get(gateway.url + "api/jobs?page_size=1000", headers=ALICE).json()["jobs"]) == before


def test_cors_is_closed_unless_configured(gateway, token_dreamd, tmp_path):
    preflight = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in httpx.options(gateway.url + "api/renders", headers=preflight).headers
    assert "access-control-allow-origin" not in httpx.get(gateway.url + "api/jobs",
                                                          headers={**ALICE, "Origin": preflight["Origin"]}).headers
    gw = Gateway(token_dreamd.target, tmp_path / "gw.log", "--cors-origin", "https://app.example")
    try:
        ok = httpx.options(gw.url + "api/renders", headers={**preflight, "Origin": "https://app.example"})
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-origin" not in httpx.options(gw.url + "api/renders", headers=preflight).headers
    finally:
        gw.stop()


def test_tls_to_dreamd_and_the_gateways_own_token(models_dir, pki, tmp_path):  # noqa: F811
    srv = start_server(models_dir, tls_cert=str(pki["server_cert"]), tls_key=str(pki["server_key"]),
                       auth_token_file=str(pki["tokens"]))
    gw = Gateway(srv.target, tmp_path / "gw.log", "--tls-ca", str(pki["ca"]), "--token-file", str(pki["token"]))
    try:
        health = httpx.get(gw.url + "healthz", timeout=30).json()
        assert health == {"gateway": "SERVING", "dreamd": "SERVING"}
        job = start(gw, FAST_DREAM, headers={}).json()["job_id"]  # the gateway's token, over TLS
        assert [n for n, _ in events(gw.url + f"api/jobs/{job}/events", {})][-1] == "end"
        wrong = httpx.get(gw.url + "api/jobs", headers={"Authorization": "Bearer not-a-token-at-all"})
        assert wrong.status_code == 401
        assert "s3cret-token" not in gw.log
    finally:
        gw.stop()
        srv.stop()


def test_plaintext_gateway_to_a_tls_dreamd_is_unavailable(models_dir, pki, tmp_path):  # noqa: F811
    srv = start_server(models_dir, tls_cert=str(pki["server_cert"]), tls_key=str(pki["server_key"]))
    gw = Gateway(srv.target, tmp_path / "gw.log")
    try:
        resp = httpx.get(gw.url + "api/options", timeout=30)
        assert resp.status_code == 503 and resp.json()["code"] == "UNAVAILABLE"
    finally:
        gw.stop()
        srv.stop()


def test_a_gan_sample_through_the_gateway(gateway, alices_generator):
    opts = httpx.get(gateway.url + "api/options", headers=ALICE, timeout=30).json()
    assert alices_generator in opts["generators"]
    assert alices_generator not in httpx.get(gateway.url + "api/options", headers=BOB, timeout=30).json()["generators"]
    resp = start(gateway, {"kind": "sample", "generator": alices_generator, "count": "9"}, files={})
    assert resp.status_code == 202, resp.text
    seen = events(gateway.url + f"api/jobs/{resp.json()['job_id']}/events", ALICE)
    assert [n for n, _ in seen][-2:] == ["result", "end"]
    grid = httpx.get(gateway.url + seen[-2][1]["url"], headers=ALICE, timeout=30)
    assert Image.open(io.BytesIO(grid.content)).size == (seen[-2][1]["stats"]["width"], seen[-2][1]["stats"]["height"])
    missing = start(gateway, {"kind": "sample", "generator": alices_generator}, files={}, headers=BOB)
    assert missing.status_code == 404 and missing.json()["violations"][0]["field"] == "generator"


@pytest.mark.parametrize("method", ["optimize", "feed_forward"])
def test_style_from_a_painting_both_ways(gateway, method):
    painting = (DATA / "starry_small.png").read_bytes()
    files = [("image", ("photo.png", PHOTO, "image/png")), ("style", ("starry.png", painting, "image/png"))]
    resp = start(gateway, {"kind": "style", "method": method, "size": "64", "iterations": "4"}, files)
    assert resp.status_code == 202, resp.text
    seen = events(gateway.url + f"api/jobs/{resp.json()['job_id']}/events", ALICE)
    assert [n for n, _ in seen][-2:] == ["result", "end"]
    assert max(seen[-2][1]["stats"]["width"], seen[-2][1]["stats"]["height"]) == 64
