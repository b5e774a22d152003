"""README command 1's check of dreamweb: paint a photo with a preset through the gateway's HTTP
API, exactly as the page does (a multipart form, then the job's Server-Sent Events, then its
result), and save the picture.

    python deploy/web_smoke.py http://127.0.0.1:8080/ photo.png out.png
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx


def main(base: str, photo: str, out: str) -> int:
    t0 = time.perf_counter()
    with httpx.Client(base_url=base, timeout=120) as web:
        health = web.get("healthz").json()
        presets = web.get("api/options").json()["presets"]
        preset = next((p for p in presets if "starry" in p["name"].lower()), presets[0])
        started = web.post("api/renders", data={"kind": "style", "preset": str(preset["index"]), "size": "512"},
                           files={"image": (Path(photo).name, Path(photo).read_bytes())})
        if started.status_code != 202:
            print(f"dreamweb refused the render: {started.status_code} {started.text}")
            return 1
        job, events, result = started.json()["job_id"], [], None
        with web.stream("GET", f"api/jobs/{job}/events") as stream:
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    events.append(line[7:])
                elif line.startswith("data: ") and events[-1] in ("result", "error"):
                    result = json.loads(line[6:])
        if events[-2:] != ["result", "end"]:
            print(f"dreamweb's event stream ended without a result: {events} {result}")
            return 1
        Path(out).write_bytes(web.get(result["url"]).content)
    print(f"dreamweb ({health}) painted preset {preset['index']} ({preset['name']}): {out}, "
          f"{result['stats']['width']}x{result['stats']['height']}, events {' '.join(events)}, "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
