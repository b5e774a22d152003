"""Checks on the real ImageNet weights (marker `realweights`; .ci/run pulls them first).

Skipped only when the weights are not in the store ($DREAMRENDER_MODELS): pull them with
`dreamctl models pull vgg16 vgg19 inception_v3 mobilenet_v2` (README command 1 does).
"""
from __future__ import annotations

import numpy as np
from pathlib import Path
import pytest
import torch
from PIL import Image

from dreamrender.models import ModelStore, get_model, get_spec, is_available
from dreamrender.server.engine import Progress, render_dream
from dreamrender.server.engine.imaging import resize_long_side, to_tensor
from dreamrender.server.engine.style import render_style
from dreamrender.settings import DreamSettings, DreamTerm, StyleSettings

from .conftest import DATA

pytestmark = pytest.mark.realweights
STORE = ModelStore()


def need(name: str):
    if not is_available(get_spec(name), STORE):
        pytest.skip(f"{name} weights not in {STORE.root}; run: dreamctl models pull {name}")
    return get_model(name, store=STORE)


def photo(side: int) -> torch.Tensor:
    img = Image.open(DATA.parent.parent / "server" / "assets" / "chelsea.png").convert("RGB")
    return resize_long_side(to_tensor(img), side)


def test_vgg16_import_matches_the_onnx_file_itself(tmp_path):
    """Our conv stack on the imported weights equals onnxruntime running the original graph."""
    import onnx.utils
    import onnxruntime as ort

    net = need("vgg16")
    src = STORE.find("vgg16", get_spec("vgg16").sources)
    if src[1].fmt != "keras_vgg16_onnx":
        pytest.skip("the store holds the .pth variant of vgg16; this check reads the ONNX one")
    sub = tmp_path / "sub.onnx"
    onnx.utils.extract_model(str(src[0]), str(sub), ["input"], ["functional_1/block5_conv3_1/Relu:0"])
    x = photo(240)[:, :, :240, :240]
    x = torch.nn.functional.interpolate(x, size=(240, 240), mode="bilinear")
    ours = net(x, ["relu5_3"])["relu5_3"].detach().numpy()
    keras_in = net.norm.apply(x).permute(0, 2, 3, 1).numpy()  # BGR, 0-255, mean-subtracted, NHWC
    theirs = ort.InferenceSession(str(sub), providers=["CPUExecutionProvider"]).run(None, {"input": keras_in})[0]
    theirs = np.transpose(theirs, (0, 3, 1, 2)) if theirs.shape[-1] == 512 else theirs
    assert np.allclose(ours, theirs, rtol=1e-3, atol=1e-2 * float(np.abs(theirs).max()) / 100)


def test_mobilenet_v2_sees_a_cat():
    net = need("mobilenet_v2")
    x = torch.nn.functional.interpolate(photo(224), size=(224, 224), mode="bilinear")
    feats = net.net.features(net.norm.apply(x)).mean((2, 3))
    top = net.net.classifier(feats).argmax(1).item()
    assert top in (281, 282, 285)  # tabby, tiger cat, Egyptian cat


def test_vgg16_dream_amplifies_relu4_3():
    net = need("vgg16")
    events = []
    start = photo(128)
    out = render_dream(net, start, settings=DreamSettings(terms=(DreamTerm("relu4_3"),), octaves=2, steps=4),
                       on_event=events.append)
    scores = [e.values["score"] for e in events if isinstance(e, Progress)]
    assert scores[-1] > 2 * scores[0]
    assert (out - start).abs().mean() > 0.01


def test_vgg16_style_loss_falls():
    net = need("vgg16")
    starry = to_tensor(Image.open(DATA / "starry_small.png").convert("RGB"))
    events = []
    render_style(net, photo(96), [starry], settings=StyleSettings(size=96, scales=1, iterations=40),
                 on_event=events.append)
    styles = [e.values["style"] for e in events if isinstance(e, Progress)]
    assert styles[-1] < 0.2 * styles[0]


def test_vgg16_onnxruntime_agrees_with_torch(tmp_path):
    from .server.test_evaluate import compare_engines

    compare_engines(need("vgg16"), STORE, tmp_path)


def test_dreamctl_evaluate_ranks_a_real_render(tmp_path):
    """A 60-iteration render beats the photo on the style term; the photo beats noise on content."""
    import json
    import subprocess
    import sys

    from dreamrender.client import DreamClient

    from .conftest import start_server

    need("vgg16")
    srv = start_server(STORE.root, default_dream_model="vgg16", default_style_model="vgg16")
    assets = DATA.parent.parent / "server" / "assets"
    content, style = tmp_path / "content.png", assets / "starry_night.jpg"
    Image.open(assets / "chelsea.png").convert("RGB").resize((128, 85), Image.LANCZOS).save(content)
    noise = tmp_path / "noise.png"
    Image.fromarray((np.random.default_rng(0).random((85, 128, 3)) * 255).astype(np.uint8)).save(noise)
    styled = tmp_path / "styled.png"
    try:
        with DreamClient(srv.target) as c:
            styled.write_bytes(c.style(content, [style], size=128, scales=1, iterations=60, timeout=900))
        r = subprocess.run([str(Path(sys.executable).parent / "dreamctl"), "--server", srv.target, "evaluate",
                            "--content", str(content), "--style", str(style), str(styled), str(content), str(noise),
                            "--json"], capture_output=True, text=True, timeout=300)
    finally:
        srv.stop()
    assert r.returncode == 0, r.stderr
    rendered, photo, noisy = json.loads(r.stdout)
    assert rendered["style"] < photo["style"]
    assert photo["content"] < noisy["content"]


def test_feed_forward_real_networks_paint_in_the_styles_colours():
    """The real arbitrary-style pair and 26-style network: the photo takes the painting's palette."""
    from dreamrender.models import FEED_FORWARD_MODELS, weights_path
    from dreamrender.server.engine.feedforward import (FeedForwardNets, free_size_model, onnx_session,
                                                       stylize_arbitrary, stylize_presets)

    for name in FEED_FORWARD_MODELS["arbitrary"] + FEED_FORWARD_MODELS["presets"]:
        if not is_available(get_spec(name), STORE):
            pytest.skip(f"{name} not in {STORE.root}; run: dreamctl models pull {name}")
    read = {n: weights_path(n, STORE).read_bytes() for n in ("arbitrary_predict", "arbitrary_transform", "multistyle26")}
    nets = FeedForwardNets(predict=onnx_session(read["arbitrary_predict"]),
                           transform=onnx_session(free_size_model(read["arbitrary_transform"])),
                           multistyle=onnx_session(read["multistyle26"]))
    content = photo(256)
    starry = to_tensor(Image.open(DATA.parent.parent / "server" / "assets" / "starry_night.jpg").convert("RGB"))
    out = stylize_arbitrary(nets, content, [starry], [1.0], 1.0)
    assert out.shape == content.shape
    # Starry Night is blue: the painting's blue-minus-red balance moves toward the style's.
    balance = [float(x[0, 2].mean() - x[0, 0].mean()) for x in (content, out, starry)]
    assert abs(balance[1] - balance[2]) < abs(balance[0] - balance[2]) / 2
    assert float((out - content).abs().mean()) > 0.1  # a painting, not the photo
    p = stylize_presets(nets, content, [(19, 1.0)], 1.0)
    assert float((p - content).abs().mean()) > 0.1 and float((p - out).abs().mean()) > 0.05


def test_vgg16_tiled_style_loss_and_gradient_equal_the_untiled():
    from dreamrender.server.engine._tiles import TiledObjective, geometry
    from dreamrender.server.engine.style import _Objective, _targets
    from dreamrender.settings import StyleImageSettings

    net, cpu = need("vgg16"), torch.device("cpu")
    content = photo(320)
    style = resize_long_side(to_tensor(Image.open(DATA / "starry_small.png").convert("RGB")), 256)
    s = StyleSettings(model="vgg16", size=320, tv_weight=1e-3, styles=(StyleImageSettings(),))
    targets = _targets(net, s, content, [style], 320, cpu)
    geo = geometry(net, ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"])
    assert geo is not None and geo.halo == 64
    grads, totals = [], []
    for objective in (_Objective(net, s, targets, cpu, "fp32"),
                      TiledObjective(net, s, targets.content, targets.grams, cpu, "fp32", geo=geo, tile=128)):
        x = (content + 0.1 * torch.randn_like(content, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
        x.requires_grad_(True)
        total, _ = objective.loss_and_grad(x)
        totals.append(float(total.detach()))
        grads.append(x.grad)
    assert totals[1] == pytest.approx(totals[0], rel=1e-4)
    assert (grads[1] - grads[0]).abs().max() <= 1e-4 * grads[0].abs().max()


def test_inception_v3_equals_the_fid_torchscript_file_on_a_photo():
    """Our module with the file's tensors, against the file's own forward, on the photo at 299 px."""
    net = need("inception_v3")
    import warnings

    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; the file is TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(str(STORE.find("inception_v3", get_spec("inception_v3").sources)[0]),
                                  map_location="cpu")
    x = torch.nn.functional.interpolate(photo(299), size=(299, 299), mode="bilinear")
    with torch.no_grad():
        ours = torch.nn.functional.avg_pool2d(net(x, ["mixed10"])["mixed10"], 8).reshape(1, -1)
        theirs = scripted(x * 255 / 128 - 1)
    assert (ours - theirs).abs().max().item() <= 1e-4


def test_inception_v3_dream_raises_mixed3_and_mixed5():
    net = need("inception_v3")
    start = photo(160)
    events: list = []
    out = render_dream(net, start, settings=DreamSettings(
        model="inception_v3", terms=(DreamTerm("mixed3"), DreamTerm("mixed5")), octaves=2, steps=10, precision="fp32"),
        on_event=events.append)
    with torch.no_grad():
        before = sum(v.pow(2).mean() for v in net(start, ["mixed3", "mixed5"]).values())
        after = sum(v.pow(2).mean() for v in net(out, ["mixed3", "mixed5"]).values())
    assert after > 1.5 * before


def test_vgg19_keras_file_gives_known_values():
    """conv1_1 against an independent computation from the file's HWIO kernel; deeper layers
    against the values this file gave when the loader was written (photo at 224x224)."""
    net = need("vgg19")
    x = torch.nn.functional.interpolate(photo(224), size=(224, 224), mode="bilinear")
    with torch.no_grad():
        out = net(x, ["conv1_1", "relu5_1", "relu5_4"])
    state = net.net.state_dict()
    kernel = state["features.0.weight"].permute(2, 3, 1, 0).numpy()  # back to HWIO
    bgr = x[0].flip(0).permute(1, 2, 0).numpy() * 255 - np.array([103.939, 116.779, 123.68])
    expected = np.einsum("hwc,hwco->o", bgr[99:102, 99:102], kernel) + state["features.0.bias"].numpy()
    np.testing.assert_allclose(out["conv1_1"][0, :, 100, 100].numpy(), expected, rtol=1e-4, atol=1e-2)
    assert out["relu5_1"].mean().item() == pytest.approx(35.5878, rel=1e-3)
    assert out["relu5_4"].mean().item() == pytest.approx(1.72599, rel=1e-3)


def test_vgg19_style_loss_falls():
    net = need("vgg19")
    content = photo(96)
    style = resize_long_side(to_tensor(Image.open(DATA.parent.parent / "server" / "assets" / "starry_night.jpg")
                                       .convert("RGB")), 96)
    events: list = []
    render_style(net, content, [style], settings=StyleSettings(model="vgg19", size=96, scales=1, iterations=20),
                 on_event=events.append)
    totals = [e.values["total"] for e in events if isinstance(e, Progress) and "total" in e.values]
    assert totals[-1] < 0.5 * totals[0]


def _need_file(name: str) -> None:
    if not is_available(get_spec(name), STORE):
        pytest.skip(f"{name} is not in {STORE.root}; run: dreamctl models pull {name}")


def test_the_mnist_sets_read_as_the_digits_they_are():
    from dreamrender.server.datasets import mnist_arrays

    _need_file("mnist")
    _need_file("mnist_full")
    small, full = mnist_arrays(STORE, "mnist"), mnist_arrays(STORE, "mnist_full")
    assert small["images"].shape == (5000, 28, 28) and np.bincount(small["labels"]).tolist() == [500] * 10
    assert full["images"].shape == (50000, 28, 28) and full["test_images"].shape == (10000, 28, 28)
    for arrays in (small, full):  # white strokes on black, centred as MNIST's are
        img = arrays["images"][:200].astype(np.float64)
        assert img.max() == 255 and img[:, :3, :].mean() < 3 and img[:, 10:18, 10:18].mean() > 30
    # Known values of the files: the first training digit of the pickle is a 5, the CSV's a 0.
    assert full["labels"][0] == 5 and small["labels"][0] == 0


def test_dcgan_eyes_samples_painted_eyes_through_its_onnx_export():
    import onnxruntime as ort

    from dreamrender.models import GeneratorStore

    _need_file("dcgan_eyes")
    info, path = GeneratorStore(STORE).get("dcgan_eyes", "shared")
    assert (info.latent, info.classes, info.channels, info.size) == (100, 8, 3, 128)
    z = np.random.default_rng(0).standard_normal((4, 100)).astype(np.float32)
    label = np.eye(8, dtype=np.float32)[[0, 2, 4, 6]]
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"z": z, "label": label})[0]
    assert out.shape == (4, 3, 128, 128) and -1 <= out.min() < -0.5 and 0.5 < out.max() <= 1
    # Paintings of eyes, not noise: neighbouring pixels agree far more than random ones do.
    assert np.abs(np.diff(out, axis=-1)).mean() < 0.1
