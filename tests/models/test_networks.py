"""The founding networks' loaders, on stand-ins with the real files' tensor names and shapes:
FID's Inception v3 (TorchScript) and Keras' VGG19 (.h5)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamrender.models import ModelStore, get_model, get_spec
from dreamrender.models._inception import MIN_SIDE

from .._standins import write_fid_inception, write_keras_vgg19_h5


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("founders")
    scripted = write_fid_inception(root / "inception_v3" / "inception-2015-12-05.pt")
    kernels = write_keras_vgg19_h5(root / "vgg19" / "vgg19-keras-imagenet.h5")
    return ModelStore(root), scripted, kernels


def test_inception_takes_the_fid_files_tensors_by_name_and_matches_its_forward(store):
    models, scripted, _ = store
    net = get_model("inception_v3", store=models)
    assert net.layer_names() == [f"mixed{i}" for i in range(11)]
    image = torch.rand(1, 3, 120, 150, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = torch.nn.functional.avg_pool2d(net(image, ["mixed10"])["mixed10"], (2, 3)).reshape(1, -1)
        theirs = scripted(image * 255 / 128 - 1)  # the file's own input convention, RGB in [-1, 1)
    assert ours.shape == theirs.shape == (1, 2048)
    assert (ours - theirs).abs().max().item() <= 1e-4


def test_inception_needs_75_px_and_names_its_layers_as_the_tutorial(store):
    models, _, _ = store
    net = get_model("inception_v3", store=models)
    spec = get_spec("inception_v3")
    assert MIN_SIDE == spec.min_side == net.min_side == 75
    assert spec.extra["default_dream_layers"] == ("mixed3", "mixed5") and not spec.supports_style
    with torch.no_grad():
        out = net(torch.rand(1, 3, 75, 75), ["mixed10"])["mixed10"]
        assert out.shape[-2:] == (1, 1)
        with pytest.raises(RuntimeError):
            net(torch.rand(1, 3, 74, 74), ["mixed10"])


def test_keras_vgg19_h5_loads_in_order_transposed_and_bgr(store):
    models, _, kernels = store
    net = get_model("vgg19", store=models, channels_last=False)
    state = net.net.state_dict()
    # The 16th conv is torchvision's features.34 (16 convs with their ReLUs, 4 pools before it).
    assert torch.equal(state["features.34.weight"], torch.from_numpy(kernels["block5_conv4"].transpose(3, 2, 0, 1)))
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = net(image, ["conv1_1"])["conv1_1"][0, :, 4, 4].numpy()
    # An independent conv1_1 at pixel (4, 4): BGR 0-255 minus the Caffe means, HWIO cross-correlation.
    bgr = image[0].flip(0).permute(1, 2, 0).numpy() * 255 - np.array([103.939, 116.779, 123.68])
    patch = bgr[3:6, 3:6, :]  # (3, 3, Cin)
    expected = np.einsum("hwc,hwco->o", patch, kernels["block1_conv1"]) + state["features.0.bias"].numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-3)


def test_onnx_exports_from_several_threads_take_turns():
    """torch's TorchScript exporter asserts that no other export runs in the process; a server's
    evaluator thread exporting beside a fixture's export once failed CI that way."""
    import io
    import threading

    from dreamrender.models import onnx_export

    errors: list[BaseException] = []
    sizes: list[int] = []

    def export_many() -> None:
        try:
            for _ in range(6):
                buf = io.BytesIO()
                onnx_export(torch.nn.Conv2d(3, 8, 3).eval(), (torch.rand(1, 3, 16, 16),), buf, opset_version=17)
                sizes.append(len(buf.getvalue()))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=export_many) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(sizes) == 18 and min(sizes) > 0
