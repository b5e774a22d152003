"""TLS (and mTLS) and bearer-token auth, end to end with certificates made here."""
from __future__ import annotations

import datetime
import ipaddress
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dreamrender.client import DreamClient, DreamError

from ..conftest import DATA, start_server

FAST = dict(octaves=1, steps=2)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, issuer_key, issuer_name, key, *, ca: bool = False, server: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
    return b.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("dreamrender test CA", ca_key, _name("dreamrender test CA"), ca_key, ca=True)
    out = {}
    for who, server in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(who, ca_key, ca.subject, key, server=server)
        out[f"{who}_cert"], out[f"{who}_key"] = d / f"{who}.pem", d / f"{who}.key"
        out[f"{who}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[f"{who}_key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    out["ca"] = d / "ca.pem"
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out["tokens"] = d / "tokens"
    out["tokens"].write_text("# production tokens\nold-token-0123456789\n\nshort\ns3cret-token-0123456789\n")
    out["token"] = d / "token"
    out["token"].write_text("s3cret-token-0123456789\n")
    return out


@pytest.fixture(scope="module")
def secure_server(models_dir, pki):
    srv = start_server(models_dir, tls_cert=str(pki["server_cert"]), tls_key=str(pki["server_key"]),
                       auth_token_file=str(pki["tokens"]))
    yield srv
    srv.stop()


def test_tls_and_token(secure_server, pki, chelsea_bytes):
    with DreamClient(secure_server.target, tls_ca=pki["ca"], token="s3cret-token-0123456789") as c:
        assert c.dream(chelsea_bytes, timeout=60, **FAST).startswith(b"\x89PNG")
        assert c.list_models()
    with DreamClient(secure_server.target, tls_ca=pki["ca"], token="old-token-0123456789") as c:  # rotation: both accepted
        assert c.list_models()


@pytest.mark.parametrize("token", [None, "wrong", "s3cret-token-0123456789X"])
def test_wrong_or_missing_token_is_unauthenticated(secure_server, pki, chelsea_bytes, token):
    with DreamClient(secure_server.target, tls_ca=pki["ca"], token=token) as c:
        with pytest.raises(DreamError) as err:
            list(c.render_dream(chelsea_bytes, timeout=30, **FAST))
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(DreamError) as err:
            c.list_models()
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert c.health() == "SERVING"  # probes need no token


def test_plaintext_client_cannot_talk_to_tls_server(secure_server):
    with DreamClient(secure_server.target, token="s3cret-token-0123456789") as c, pytest.raises(DreamError) as err:
        c.list_models(timeout=5)
    assert err.value.code == grpc.StatusCode.UNAVAILABLE


def test_dreamctl_with_tls_and_token_file(secure_server, pki, tmp_path, monkeypatch):
    out = tmp_path / "o.png"
    bin_ = Path(sys.executable).parent / "dreamctl"
    base = [str(bin_), "--server", secure_server.target, "--tls-ca", str(pki["ca"])]
    r = subprocess.run(base + ["--auth-token-file", str(pki["token"]), "dream", str(DATA / "chelsea_small.png"),
                               "-o", str(out), "--octaves", "1", "--steps", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(base + ["models"], capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "DREAMRENDER_TOKEN": "nope"})
    assert r.returncode == 1 and r.stderr.startswith("dreamctl: UNAUTHENTICATED")
    assert "nope" not in r.stderr


def test_mutual_tls(models_dir, pki, chelsea_bytes):
    srv = start_server(models_dir, tls_cert=str(pki["server_cert"]), tls_key=str(pki["server_key"]),
                       tls_client_ca=str(pki["ca"]))
    try:
        with DreamClient(srv.target, tls_ca=pki["ca"], tls_cert=pki["client_cert"], tls_key=pki["client_key"]) as c:
            assert c.list_models()
        with DreamClient(srv.target, tls_ca=pki["ca"]) as c, pytest.raises(DreamError) as err:
            c.list_models(timeout=5)
        assert err.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        srv.stop()


@pytest.mark.parametrize("token", ["# production tokens", "short"])
def test_comment_lines_and_short_lines_are_not_tokens(secure_server, pki, chelsea_bytes, token):
    with DreamClient(secure_server.target, tls_ca=pki["ca"], token=token) as c, pytest.raises(DreamError) as err:
        c.list_models()
    assert err.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_a_token_file_without_a_valid_token_refuses_to_start(tmp_path, caplog):
    from dreamrender.server._security import load_tokens

    f = tmp_path / "tokens"
    f.write_text("# production tokens\nshort\n\n")
    with pytest.raises(ValueError, match="no valid token"):
        load_tokens(f)
    assert "line 2" in caplog.text and "short" not in caplog.text.replace("shorter", "")
    r = subprocess.run([str(Path(sys.executable).parent / "dreamd"), "--listen", "127.0.0.1:0",
                        "--auth-token-file", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "no valid token" in r.stderr


def test_reflection_under_tokens_is_unauthenticated_not_unknown(secure_server, pki, caplog):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    creds = grpc.ssl_channel_credentials(pki["ca"].read_bytes())
    with grpc.secure_channel(secure_server.target, creds) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        req = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.RpcError) as err:
            list(stub.ServerReflectionInfo(iter([req]), timeout=10))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        md = [("authorization", "Bearer s3cret-token-0123456789")]
        answer = list(stub.ServerReflectionInfo(iter([req]), metadata=md, timeout=10))
    names = {s.name for s in answer[0].list_services_response.service}
    assert "dreamrender.v1.DreamRenderService" in names
    assert "TypeError" not in caplog.text


def test_health_listener_answers_plaintext_probes_and_nothing_else(models_dir, pki):
    # kubelet's gRPC probe speaks plaintext only: --health-listen serves the health service alone.
    srv = start_server(models_dir, tls_cert=str(pki["server_cert"]), tls_key=str(pki["server_key"]),
                       auth_token_file=str(pki["tokens"]), health_listen="127.0.0.1:0")
    try:
        probe = f"127.0.0.1:{srv.server.health_port}"
        with DreamClient(probe) as c:
            assert c.health(timeout=5) == "SERVING"
            assert c.health("dreamrender.v1.DreamRenderService", timeout=5) == "SERVING"
            with pytest.raises(DreamError) as err:
                c.list_models(timeout=5)
            assert err.value.code == grpc.StatusCode.UNIMPLEMENTED  # no renders, no catalog: health only
        with DreamClient(srv.target, token="s3cret-token-0123456789") as c, pytest.raises(DreamError):
            c.health(timeout=5)  # the main port still wants TLS
    finally:
        srv.stop()
