"""`dreamctl gan train|sample`: train a DCGAN on the server, then sample it."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from dreamrender.settings import GAN_DATASETS, GanSettings, SampleSettings

__all__ = ["add_gan_parser", "run_gan"]

GAN_EXAMPLES = """examples:
  dreamctl gan train --dataset mnist --size 28 --epochs 5 --name mydigits --frames grids/
  dreamctl gan train --dataset photos.zip --size 64 --epochs 20 --name myfaces --detach
  dreamctl gan sample mydigits -n 25 -o grid.png [--seed 3] [--label 7]
  dreamctl gan sample mydigits --walk 60 -o walk.webp
  dreamctl gan sample dcgan_eyes --label 2 -n 16 -o eyes.png
"""


def add_gan_parser(sub: Any, add_settings: Callable[..., list[str]], add_preview: Callable[..., None]) -> None:
    g = sub.add_parser("gan", help="train a DCGAN on the server, or sample a generator", epilog=GAN_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    gsub = g.add_subparsers(dest="gan_command", required=True)
    t = gsub.add_parser("train", help="train a DCGAN (a job: progress, 5x5 grids, FID per epoch)",
                        epilog=GAN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--dataset", default="mnist", metavar="mnist|mnist_full|DIR|ARCHIVE",
                   help="training images: MNIST (5,000 or 50,000 digits), a folder of images, or a tar/zip of them")
    t.add_argument("--name", required=True, help="name the generator is registered under")
    t.add_argument("-o", "--output", help="where to write the final 5x5 grid")
    add_settings(t, GanSettings, skip=("dataset",))
    add_preview(t, GanSettings().preview)
    s = gsub.add_parser("sample", help="a grid of samples, or a latent walk (an animation)",
                        epilog=GAN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("generator", help="a generator name (dreamctl models lists them)")
    s.add_argument("-o", "--output", help="where to write the grid (PNG/JPEG) or walk (WebP/GIF)")
    add_settings(s, SampleSettings)
    add_preview(s, SampleSettings().preview)


def _dataset(value: str) -> dict[str, Any]:
    """--dataset as request fields: a named set, a folder of images, or an archive file."""
    if value.replace("-", "_") in GAN_DATASETS and value != "images":
        return {"dataset": value.replace("-", "_")}
    path = Path(value)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        return {"dataset": "images", "images": files}
    if path.is_file():
        return {"dataset": "images", "archive": path}
    raise SystemExit(f"dreamctl gan train: --dataset {value!r} is neither "
                     f"{', '.join(d for d in GAN_DATASETS if d != 'images')}, a folder nor an archive file")


def _format(output: str | None, walk: bool) -> str | None:
    suffix = Path(output).suffix.lower() if output else ""
    if walk:
        return "gif" if suffix == ".gif" else "webp"
    return "jpeg" if suffix in (".jpg", ".jpeg") else None


def run_gan(client: Any, args: argparse.Namespace, *, run_render: Callable[..., int],
            settings_kwargs: Callable[..., dict], preview_opts: Callable[..., dict], job_kwargs: Callable[..., dict]) -> int:
    if args.gan_command == "train":
        settings = settings_kwargs(args, GanSettings)
        settings.pop("dataset", None)  # --dataset also takes a folder or archive: read by _dataset
        events = client.train_generator(args.name, **_dataset(args.dataset), preview=preview_opts(args),
                                        timeout=args.timeout, **job_kwargs(args, output_needed=False), **settings)
        return run_render(events, args)
    settings = settings_kwargs(args, SampleSettings)
    events = client.render_sample(args.generator, result_format=_format(args.output, bool(settings.get("walk"))),
                                  preview=preview_opts(args), timeout=args.timeout, **job_kwargs(args), **settings)
    return run_render(events, args)
