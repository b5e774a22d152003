"""GAN jobs through real processes: dreamctl gan train|sample against dreamd, and a training job
that resumes from its last saved epoch after its server is killed."""
from __future__ import annotations

import signal
import time

from PIL import Image

from dreamrender.client import DreamClient

from .._standins import write_mnist_standins
from ..conftest import Dreamd

# The stand-in has 200 digits: 25 steps an epoch at batch 8, each a few ms with an 8-d latent.
TRAIN = ["--batch", "8", "--latent", "8", "--width", "32", "--fid-samples", "0"]


def _dreamd(tmp_path, *flags, data_dir=None) -> Dreamd:
    write_mnist_standins(tmp_path / "models")
    return Dreamd(tmp_path, *flags, data_dir=data_dir)


def test_dreamctl_trains_then_samples_a_grid_and_a_walk(tmp_path):
    d = _dreamd(tmp_path)
    try:
        r = d.ctl("gan", "train", "--dataset", "mnist", "--name", "mydigits", "--steps", "6", "--every", "3",
                  *TRAIN, "--frames", str(tmp_path / "grids"), "-o", str(tmp_path / "final.png"))
        assert r.returncode == 0, r.stderr
        assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == ["frame_0000_step00003.png",
                                                                          "frame_0001_step00006.png"]
        assert "d_loss=" in r.stderr and "g_loss=" in r.stderr
        r = d.ctl("gan", "sample", "mydigits", "-n", "9", "-o", str(tmp_path / "grid.png"), "--seed", "2")
        assert r.returncode == 0, r.stderr
        assert Image.open(tmp_path / "grid.png").size == (3 * 28 + 4 * 2,) * 2
        r = d.ctl("gan", "sample", "mydigits", "--walk", "6", "-o", str(tmp_path / "walk.webp"))
        assert r.returncode == 0, r.stderr
        assert Image.open(tmp_path / "walk.webp").format == "WEBP"
        listed = d.ctl("models").stdout
        assert "mydigits" in listed and "generator" in listed
        r = d.ctl("gan", "sample", "nobody", "-o", str(tmp_path / "x.png"))
        assert r.returncode == 1 and r.stderr.startswith("dreamctl: NOT_FOUND [generator]")
    finally:
        d.stop()


def test_a_killed_servers_training_job_resumes_from_its_last_epoch(tmp_path):
    d = _dreamd(tmp_path, "--job-heartbeat", "0.5")
    job_id = d.ctl("gan", "train", "--name", "survivor", "--steps", "60", *TRAIN, "--detach").stdout.strip()
    state = tmp_path / "models" / "generators" / "shared" / ".survivor.training.pt"
    deadline = time.monotonic() + 120
    while not state.is_file() and time.monotonic() < deadline:  # the first epoch's end saved it
        time.sleep(0.1)
    d.stop(signal.SIGKILL)
    d2 = Dreamd(tmp_path, "--job-heartbeat", "0.5", data_dir=d.data_dir)
    try:
        r = d2.ctl("jobs", "watch", job_id, "-o", str(tmp_path / "final.png"), timeout=300)
        assert r.returncode == 0, r.stderr
        assert "training of survivor continues from its saved step" in d2.log()
        with DreamClient(d2.target) as c:
            job = c.get_job(job_id)
            assert job.resumed == 1 and job.result.stats.steps == 60
            assert "survivor" in {m.name for m in c.list_models()}
        assert not state.exists()  # a finished run leaves no state behind
    finally:
        d2.stop()
