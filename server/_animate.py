"""Animated WebP and GIF from frames kept PNG-encoded, written one decoded frame at a time.

This file is also the encoder process that `codec.AnimationWriter.finish` starts:

    python -I _animate.py FRAMES_FD OUT_FD FORMAT FRAME_MS < spans.json

FRAMES_FD is the writer's spool file and OUT_FD the file the animation goes to (both inherited);
spans.json holds the frames' [offset, size] pairs. It runs as a script and imports only Pillow
(0.03-0.05 s to start): run as `dreamrender.server._animate` it would import the server package,
and with it torch (1.5 s).

Why a process of its own: Pillow's GIF and WebP writers hold the GIL in many short calls (none
longer than 9 ms), for 5 s at 2048 px x 12 frames. No call is long, but each time dreamd's
event loop or gRPC's poller thread wants the GIL back it can wait up to the switch interval (5 ms)
behind the encoder, and a health check needs that several times: health took 53-138 ms during
the encoding (232 ms in #28's D21, with other work running). Out of process, the encoding shares
no GIL.
"""
from __future__ import annotations

import io
import json
import os
import sys
from typing import Callable

from PIL import Image

__all__ = ["write_animation", "EncodedFrames"]


class EncodedFrames(Image.Image):
    """The frames of an animation, kept encoded, as one multi-frame image for Pillow's save:
    seeking to a frame decodes that frame alone, so writing N frames holds one decoded frame
    at a time (Pillow's animated writers walk n_frames with seek, as with any animated file)."""

    def __init__(self, count: int, read: Callable[[int], bytes]) -> None:
        super().__init__()
        self._count, self._read = count, read
        self._index = -1
        self.seek(0)

    @property
    def n_frames(self) -> int:
        return self._count

    @property
    def is_animated(self) -> bool:
        return self._count > 1

    def seek(self, frame: int) -> None:
        if not 0 <= frame < self._count:
            raise EOFError("no more frames")  # how Pillow's frame iterators learn the end
        if frame != self._index:
            with Image.open(io.BytesIO(self._read(frame))) as f:
                f.load()
                self.im, self._mode, self._size = f.im, f.mode, f.size
            self._index = frame

    def tell(self) -> int:
        return self._index


def write_animation(fmt: str, frame_ms: int, count: int, read: Callable[[int], bytes]) -> bytes:
    """The animated `fmt` ("webp" or "gif") of `count` frames, frame `i` being the PNG `read(i)`."""
    seq, buf = EncodedFrames(count, read), io.BytesIO()
    if fmt == "webp":
        seq.save(buf, format="WEBP", save_all=True, duration=frame_ms, loop=0, quality=90, method=4)
    elif fmt == "gif":
        seq.save(buf, format="GIF", save_all=True, duration=frame_ms, loop=0, optimize=False)
    else:
        raise ValueError(f"animations are webp or gif, not {fmt!r}")
    return buf.getvalue()


def _main(argv: list[str]) -> None:
    frames, out, fmt, frame_ms = int(argv[0]), int(argv[1]), argv[2], int(argv[3])
    spans = json.load(sys.stdin)
    data = write_animation(fmt, frame_ms, len(spans), lambda i: os.pread(frames, spans[i][1], spans[i][0]))
    with os.fdopen(out, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    _main(sys.argv[1:])
