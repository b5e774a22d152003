"""TrainGenerator and RenderSample through a real server on 127.0.0.1:0 (MNIST stand-ins in the store)."""
from __future__ import annotations

import io
import tarfile
import zipfile

import grpc
import pytest
from PIL import Image

from dreamrender.client import DreamClient, DreamError
from dreamrender.v1 import dreamrender_pb2 as pb

from ..conftest import start_server

TINY = dict(steps=6, batch=8, latent=8, width=32, fid_samples=0, progress_every=2, preview={"every": 3})
TOKENS = ("alice-token-0123456789", "bob-token-0123456789")


def _png(size=(40, 30), mode="RGB", color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color if mode != "L" else 128).save(buf, format="PNG")
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _events(call) -> list:
    return list(call)


@pytest.fixture(scope="module")
def digits(server):
    """A generator trained on the MNIST stand-in, with its training's events."""
    with DreamClient(server.target) as c:
        return _events(c.train_generator("digits", dataset="mnist", timeout=120, **TINY))


def test_training_streams_losses_grids_scores_then_registers(server, digits):
    kinds = [type(e).__name__ for e in digits]
    assert kinds[0] == "Accepted" and kinds[-1] == "Result"
    progress = [e for e in digits if isinstance(e, pb.Progress)]
    assert [p.step for p in progress] == [2, 4, 6]
    assert {"d_loss", "g_loss", "d_x", "d_g_z", "steps_per_second"} <= set(progress[-1].values)
    frames = [e for e in digits if isinstance(e, pb.Frame)]
    assert [f.step for f in frames] == [3, 6] and frames[0].image.media_type == "image/png"
    scores = [e for e in digits if isinstance(e, pb.CheckpointScores)]
    assert scores and 0 <= scores[-1].values["digit_score"] <= 1  # MNIST runs are judged by the digit scorer
    result = digits[-1]
    assert result.stats.model == "digits" and "digit_score" in result.stats.values
    with DreamClient(server.target) as c:
        listed = {m.name: m for m in c.list_models()}
    assert listed["digits"].kind == "generator" and listed["dcgan_eyes"].kind == "generator"
    assert listed["mnist"].kind == "dataset"


def test_samples_a_grid_and_a_walk(server, digits):
    with DreamClient(server.target) as c:
        grid = Image.open(io.BytesIO(c.sample("digits", count=4, seed=1, timeout=60)))
        assert grid.size == (2 * 28 + 3 * 2,) * 2
        again = Image.open(io.BytesIO(c.sample("digits", count=4, seed=1, timeout=60)))
        assert grid.tobytes() == again.tobytes()  # seeded
        events = _events(c.render_sample("digits", walk=5, walk_keys=2, cell_side=56, timeout=60))
    frames = [e for e in events if isinstance(e, pb.Frame)]
    assert len(frames) == 5
    walk = Image.open(io.BytesIO(events[-1].image.data))
    # (The encoder merges frames that came out the same, which a 6-step generator's may.)
    assert walk.format == "WEBP" and walk.size == (56, 56)


def test_trains_on_an_archive_of_mixed_images(server):
    members = {"a.png": _png(), "sub/b.png": _png((90, 60), "RGBA"), "c.png": _png((50, 50), "L"),
               "notes.txt": b"not an image, and not named like one: skipped"}
    with DreamClient(server.target) as c:
        events = _events(c.train_generator("mine", dataset="images", archive=_zip(members), size=32, steps=2, width=32,
                                           batch=2, latent=8, fid_samples=0, timeout=120))
    assert isinstance(events[-1], pb.Result)
    with DreamClient(server.target) as c:
        assert Image.open(io.BytesIO(c.sample("mine", count=1, timeout=60))).size == (36, 36)


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("kwargs, field", [
    (dict(size=48), "size"),
    (dict(channels=2), "channels"),
    (dict(dataset="images", archive=_zip({"x.png": _png()}), conditional=True), "conditional"),
    (dict(dataset="images"), "images"),
    (dict(dataset="images", archive=_zip({"readme.txt": b"hi"})), "archive"),
    (dict(dataset="images", archive=_tar_gz({"bad.png": b"this is no png"})), "archive[bad.png]"),
    (dict(dataset="images", archive=b"neither zip nor tar"), "archive"),
    (dict(images=[_png()]), "images"),
    (dict(batch=1), "batch"),
])
def test_bad_training_requests_name_the_field(server, kwargs, field):
    with DreamClient(server.target) as c, pytest.raises(DreamError) as info:
        _events(c.train_generator("bad", **(dict(steps=1, fid_samples=0) | kwargs), timeout=60))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in info.value.violations] == [field]


def test_an_invalid_name_is_refused(server):
    with DreamClient(server.target) as c, pytest.raises(DreamError) as info:
        _events(c.train_generator("../escape", steps=1, timeout=60))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT and info.value.violations[0][0] == "name"


@pytest.mark.parametrize("kwargs, code, field", [
    (dict(generator="nobody"), grpc.StatusCode.NOT_FOUND, "generator"),
    (dict(generator="digits", label=3), grpc.StatusCode.INVALID_ARGUMENT, "label"),
    (dict(generator="digits", count=0), grpc.StatusCode.INVALID_ARGUMENT, "count"),
    (dict(generator="digits", walk=4, result_format="png"), grpc.StatusCode.INVALID_ARGUMENT, "result_format"),
])
def test_bad_sample_requests_name_the_field(server, digits, kwargs, code, field):
    with DreamClient(server.target) as c, pytest.raises(DreamError) as info:
        c.sample(timeout=60, **kwargs)
    assert info.value.code == code and [f for f, _ in info.value.violations] == [field]
    if code == grpc.StatusCode.NOT_FOUND:
        assert "digits" in info.value.details  # what does exist is listed


def test_archive_over_the_count_limit_is_refused_from_its_directory(models_dir, tmp_path):
    srv = start_server(models_dir, max_train_images=3)
    try:
        # Four members that are not even images: refused by their count, before any is read.
        archive = _zip({f"{i}.png": b"junk" for i in range(4)})
        with DreamClient(srv.target) as c, pytest.raises(DreamError) as info:
            _events(c.train_generator("many", dataset="images", archive=archive, steps=1, timeout=60))
        assert info.value.violations[0][0] == "archive" and "more than 3 images" in info.value.details
    finally:
        srv.stop()


def test_a_conditional_generator_takes_labels_in_range(server):
    with DreamClient(server.target) as c:
        _events(c.train_generator("cdigits", conditional=True, timeout=120, **(TINY | {"steps": 2})))
        assert Image.open(io.BytesIO(c.sample("cdigits", count=2, label=9, timeout=60))).size == (62, 32)
        with pytest.raises(DreamError) as info:
            c.sample("cdigits", label=10, timeout=60)
    assert info.value.violations[0][0] == "label" and "0 to 9" in info.value.details


def test_one_tokens_generators_are_not_found_by_another(models_dir, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("\n".join(TOKENS) + "\n")
    srv = start_server(models_dir, auth_token_file=str(tokens))
    try:
        with DreamClient(srv.target, token=TOKENS[0]) as alice, DreamClient(srv.target, token=TOKENS[1]) as bob:
            _events(alice.train_generator("secret", timeout=120, **(TINY | {"steps": 2})))
            assert alice.sample("secret", count=1, timeout=60)
            with pytest.raises(DreamError) as info:
                bob.sample("secret", timeout=60)
            assert info.value.code == grpc.StatusCode.NOT_FOUND and "secret" not in info.value.details.split("(")[1]
            assert "secret" not in {m.name for m in bob.list_models()}
            assert "secret" in {m.name for m in alice.list_models()}
    finally:
        srv.stop()


def test_cancel_stops_training_and_keeps_the_last_checkpoint(server, models_dir):
    with DreamClient(server.target) as c:
        call = c.train_generator("stopped", timeout=120, detach=True, **(TINY | {"steps": 400}))
        job_id = next(call).job_id
        for ev in call:
            if isinstance(ev, pb.Progress) and ev.step >= 26:  # past the first epoch's end (25 steps)
                break
        c.cancel_job(job_id)
        job = c.get_job(job_id)
        for _ in range(100):
            if job.done:
                break
            job = c.get_job(job_id)
            __import__("time").sleep(0.1)
    assert job.state == pb.JOB_STATE_CANCELLED and job.progress.step < 60
    assert (models_dir / "generators" / "shared" / ".stopped.training.pt").is_file()


def test_training_honours_max_job_memory(models_dir):
    srv = start_server(models_dir, max_job_memory=200)  # MB: under a DCGAN run's estimate
    try:
        with DreamClient(srv.target) as c, pytest.raises(DreamError) as info:
            _events(c.train_generator("big", steps=1, timeout=60))
        assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and info.value.violations[0][0] == "batch"
        assert "--max-job-memory of 200 MB" in info.value.details
    finally:
        srv.stop()


def test_the_asyncio_client_trains_and_samples(server):
    import asyncio

    from dreamrender.client import AsyncDreamClient

    async def run() -> tuple[list, bytes]:
        async with AsyncDreamClient(server.target) as c:
            events = [ev async for ev in c.train_generator("async_digits", timeout=120, **(TINY | {"steps": 2}))]
            return events, await c.sample("async_digits", count=4, timeout=60)

    events, grid = asyncio.run(run())
    assert isinstance(events[0], pb.Accepted) and isinstance(events[-1], pb.Result)
    assert Image.open(io.BytesIO(grid)).size == (62, 62)
