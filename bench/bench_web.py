"""dreamweb in one run (#29): frame latency into a real browser, the gateway's memory, and 20
watchers of one job. Starts its own dreamd (real weights) and dreamweb on loopback.

    python bench/bench_web.py [--size 512] [--steps 10] [--watchers 20] [--rounds 3] [--shots DIR]

1. Latency: a dream (vgg16, --size, previews every step) is started through the SDK; the page,
   in headless Chromium (Debian's, under Playwright), opens it at #job=<id> and watches it through
   dreamweb. Each frame's arrival on the SDK's own render stream (dreamd's emission, over loopback
   gRPC) is matched by step with its arrival in the page (performance.timeOrigin + now(), the same
   clock); p50 and p95 of the difference. The first frame the page gets is left out: WatchJob
   replays it on attaching, so its "latency" is the attach time.
2. Memory: dreamweb's RSS idle, after the browser's dream, and after each round of --watchers SSE
   clients (httpx) watching one dream; each watcher's frames are checked against the render
   stream's (every frame emitted after all had attached must reach every watcher).
3. --shots DIR: screenshots of the page mid-render and with the result (the page starts the dream).
Needs vgg16 in $DREAMRENDER_MODELS and Debian's chromium.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench_memory import proc_mib  # the process's VmRSS and VmHWM in MiB

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "server/assets/chelsea.png"
BIN = Path(sys.executable).parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def _start(cmd: list[str], pattern: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        m = re.search(pattern, line)
        if m:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its pipe drained
            return proc, m.group(1)
    raise SystemExit(f"{cmd[0]} did not start")


def _rss_mb(pid: int) -> float:
    return proc_mib(pid)["VmRSS"]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


class RenderStream:
    """A detached dream through the SDK; `arrivals` maps each frame's step to its arrival (epoch s)."""

    def __init__(self, target: str, size: int, steps: int, request_id: str) -> None:
        self.arrivals: dict[int, float] = {}
        self.job = ""
        self.accepted = threading.Event()
        self.done = threading.Event()
        args = dict(size=size, steps=steps, octaves=4, preview={"every": 1}, detach=True, request_id=request_id)
        threading.Thread(target=self._run, args=(target, args), daemon=True).start()
        self.accepted.wait(60)

    def _run(self, target: str, args: dict) -> None:
        from dreamrender.client import DreamClient
        from dreamrender.v1 import dreamrender_pb2 as pb

        with DreamClient(target) as client:
            for ev in client.render_dream(PHOTO, timeout=600, **args):
                now = time.time()
                if isinstance(ev, pb.Accepted):
                    self.job = ev.job_id
                    self.accepted.set()
                elif isinstance(ev, pb.Frame):
                    self.arrivals[ev.step] = now
        self.done.set()


def latency(browser, web: str, dreamd: str, size: int, steps: int) -> tuple[list[float], int, int]:
    """Frame latencies (ms) from dreamd's render stream to the page, frames emitted and seen."""
    render = RenderStream(dreamd, size, steps, f"bench-web-{time.time_ns()}")
    page = browser.new_context(bypass_csp=True).new_page()  # Playwright's waits evaluate strings
    page.goto(f"{web}#job={render.job}")
    render.done.wait(600)
    page.wait_for_selector("#state[data-state=succeeded]", timeout=120_000)
    seen = page.evaluate("window.dreamweb.frameTimes")
    page.close()
    firsts = seen[1:]  # the first is WatchJob's replay on attaching
    lat = [t["at"] - render.arrivals[t["step"]] * 1000 for t in firsts if t["step"] in render.arrivals]
    return lat, len(render.arrivals), len(seen)


async def _watch(web: str, job: str, steps: list[int], attached: asyncio.Event, count: list[int]) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=600) as client:
        async with client.stream("GET", f"{web}api/jobs/{job}/events") as resp:
            name = ""
            async for line in resp.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                    if name == "accepted":
                        count[0] += 1
                        if count[0] == count[1]:
                            attached.set()
                elif line.startswith("data: ") and name == "frame":
                    steps.append(json.loads(line[6:])["step"])


def watchers(web: str, dreamd: str, n: int, size: int, steps: int) -> tuple[int, int, int]:
    """n SSE watchers of one dream: (frames emitted after all attached, fewest any watcher got of
    those, most lost by one watcher)."""
    render = RenderStream(dreamd, size, steps, f"bench-watch-{time.time_ns()}")

    async def run() -> tuple[list[list[int]], float]:
        attached, count = asyncio.Event(), [0, n]
        got: list[list[int]] = [[] for _ in range(n)]
        tasks = [asyncio.create_task(_watch(web, render.job, got[i], attached, count)) for i in range(n)]
        await attached.wait()
        t_all = time.time()
        await asyncio.gather(*tasks)
        return got, t_all

    got, t_all = asyncio.run(run())
    render.done.wait(600)
    emitted = {s for s, t in render.arrivals.items() if t > t_all + 0.05}
    fewest = min(len(emitted & set(g)) for g in got)
    return len(emitted), fewest, len(emitted) - fewest


def screenshots(browser, web: str, size: int, steps: int, shots: Path) -> None:
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_context(viewport={"width": 1200, "height": 900}, bypass_csp=True).new_page()
    page.goto(web)
    page.wait_for_selector("#layer option", state="attached")
    page.set_input_files("#photo", PHOTO)
    page.fill("#size", str(size))
    page.fill("#steps", str(steps))
    page.click("#start")
    page.wait_for_function("window.dreamweb.frames >= 5", timeout=300_000)  # previews every 5 steps: 8 in all
    page.screenshot(path=str(shots / "web_mid_render.png"))
    page.wait_for_selector("#state[data-state=succeeded]", timeout=600_000)
    page.wait_for_timeout(300)
    page.screenshot(path=str(shots / "web_result.png"))
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, bypass_csp=True).new_page()
    phone.goto(web + "#job=" + page.evaluate("window.dreamweb.job"))
    phone.wait_for_selector("#state[data-state=succeeded]", timeout=60_000)
    phone.screenshot(path=str(shots / "web_phone.png"), full_page=True)
    print(f"screenshots: {shots}/web_mid_render.png, web_result.png, web_phone.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--watchers", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--shots", type=Path)
    a = p.parse_args()
    from playwright.sync_api import sync_playwright

    dreamd, target = _start([str(BIN / "dreamd"), "--listen", "127.0.0.1:0", "--device", "cpu"], r"listening on (\S+)")
    web, url = _start([str(BIN / "dreamweb"), "--dreamd", target, "--listen", "127.0.0.1:0"], r"listening on (\S+/)")
    try:
        idle = _rss_mb(web.pid)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            lat, emitted, seen = latency(browser, url, target, a.size, a.steps)
            print(f"frame latency, dreamd -> page ({a.size} px dream, {emitted} frames emitted, {seen} shown): "
                  f"p50 {statistics.median(lat):.1f} ms, p95 {_pct(lat, 0.95):.1f} ms, max {max(lat):.1f} ms "
                  f"over {len(lat)} frames (goal: <= 50 ms)")
            after_browser = _rss_mb(web.pid)
            if a.shots:
                screenshots(browser, url, a.size, a.steps, a.shots)
            browser.close()
        print(f"dreamweb RSS: idle {idle:.0f} MB, after the browser's dream {after_browser:.0f} MB")
        for r in range(a.rounds):
            total, fewest, lost = watchers(url, target, a.watchers, a.size, a.steps)
            print(f"round {r + 1}: {a.watchers} SSE watchers of one dream: {total} frames emitted after all attached, "
                  f"every watcher got at least {fewest} (most lost by one: {lost}); dreamweb RSS {_rss_mb(web.pid):.0f} MB")
    finally:
        for proc in (web, dreamd):
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
