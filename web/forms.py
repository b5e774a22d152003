"""A render's multipart form -> the SDK call that starts it.

The form's fields are the settings dataclasses' own (DreamSettings, StyleSettings, SampleSettings,
and PreviewSettings as `preview.every`, ...), with their names, defaults, ranges and choices: the
page builds its controls from `options()`, and a field left empty takes dreamd's default. The
gateway checks only what it must to build a request (a number is a number, a field exists);
ranges and images are dreamd's to check, so its INVALID_ARGUMENT, with the field named, is what
the page shows.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from dreamrender.errors import InvalidArgumentError
from dreamrender.settings import (DreamSettings, PreviewSettings, SampleSettings, StyleSettings, default_of,
                                  setting_fields)
from dreamrender.v1 import dreamrender_pb2 as pb

__all__ = ["KINDS", "FormError", "RenderCall", "options", "render_call"]

# What each kind of render reads from the form besides its settings.
_SETTINGS = {"dream": DreamSettings, "style": StyleSettings, "sample": SampleSettings}
KINDS = tuple(_SETTINGS)
_FILES = {"dream": ("image", "guide", "mask"), "style": ("image", "style"), "sample": ()}
_EXTRA = {"dream": ("layer", "model"), "style": ("preset", "model"), "sample": ("generator",)}
_COMMON = ("kind", "request_id", "result_format")


class FormError(InvalidArgumentError):
    """A form field the gateway cannot turn into a request; `field` names it, `allowed` what would do."""


@dataclasses.dataclass(frozen=True)
class RenderCall:
    """What to call on the SDK's AsyncDreamClient: `method` with `args` and `kwargs`."""

    kind: str
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def _spec(f: dataclasses.Field, prefix: str = "") -> dict[str, Any]:
    meta, default = f.metadata, f.default
    kind = ("choice" if meta.get("choices") else "bool" if isinstance(default, bool)
            else "int" if isinstance(default, int) else "float" if isinstance(default, float) else "text")
    return {"name": prefix + f.name, "type": kind, "default": default, "help": meta["help"], "min": meta.get("lo"),
            "max": meta.get("hi"), "choices": list(meta.get("choices") or ())}


def _fields(cls: type) -> list[dict[str, Any]]:
    specs = [_spec(f) for f in setting_fields(cls) if f.metadata.get("cli", True)]
    preview = default_of(cls, "preview")
    for f in setting_fields(PreviewSettings):
        spec = _spec(f, "preview.")
        spec["default"] = getattr(preview, f.name)  # each render kind has its own preview defaults
        specs.append(spec)
    return specs


def options(catalog: pb.ListModelsResponse) -> dict[str, Any]:
    """What the page offers: each kind's settings, and dreamd's models, layers, presets and generators."""
    models = [{"name": m.name, "kind": m.kind, "available": m.available, "supports_style": m.supports_style,
               "default_dream_layer": m.default_dream_layer, "layers": [x.name for x in m.layers]}
              for m in catalog.models]
    presets = [{"index": p.index, "name": p.name} for m in catalog.models for p in m.presets if m.available]
    return {"kinds": {kind: _fields(cls) for kind, cls in _SETTINGS.items()}, "models": models, "presets": presets,
            "generators": [m.name for m in catalog.models if m.kind == "generator" and m.available],
            "device": catalog.device}


def _coerce(spec: dict[str, Any], raw: str) -> Any:
    name, kind = spec["name"], spec["type"]
    try:
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered not in ("1", "0", "true", "false", "on", "off", "yes", "no"):
                raise ValueError(raw)
            return lowered in ("1", "true", "on", "yes")
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise FormError(name, f"{raw!r} is not {'an' if kind == 'int' else 'a'} {kind}") from None
    return raw.strip()


def _presets(values: Sequence[str]) -> list[tuple[int, float]]:
    out = []
    for raw in values:
        index, _, weight = raw.partition(":")
        try:
            out.append((int(index), float(weight) if weight else 1.0))
        except ValueError:
            raise FormError("preset", f"{raw!r} is not N or N:W (a preset's index and weight)") from None
    return out


def _settings(kind: str, fields: Mapping[str, list[str]]) -> dict[str, Any]:
    """The form's settings as SDK keyword arguments (preview.* gathered into `preview`)."""
    specs = {s["name"]: s for s in _fields(_SETTINGS[kind])}
    allowed = set(specs) | set(_FILES[kind]) | set(_EXTRA[kind]) | set(_COMMON)
    out: dict[str, Any] = {}
    preview: dict[str, Any] = {}
    for name, values in fields.items():
        if name not in allowed:
            raise FormError(name, f"not a field of a {kind} render", sorted(allowed))
        if name not in specs or not values or values[-1] == "":
            continue
        value = _coerce(specs[name], values[-1])
        if name.startswith("preview."):
            preview[name.removeprefix("preview.")] = value
        else:
            out[name] = value
    if preview:
        out["preview"] = preview
    return out


def render_call(fields: Mapping[str, list[str]], files: Mapping[str, list[bytes]]) -> RenderCall:
    """The SDK call for a form: `fields` are its text values by name, `files` its uploads' bytes."""
    kind = (fields.get("kind") or ["dream"])[-1]
    if kind not in _SETTINGS:
        raise FormError("kind", f"{kind!r} is not a render kind", KINDS)
    for name in files:
        if name not in _FILES[kind]:
            raise FormError(name, f"a {kind} render takes no file here", _FILES[kind] or "none")
    kwargs = _settings(kind, fields)
    text = {name: (fields.get(name) or [""])[-1] for name in (*_EXTRA[kind], "request_id", "result_format")}
    kwargs.update(detach=True, request_id=text["request_id"])
    if text["result_format"]:
        kwargs["result_format"] = text["result_format"]
    if kind == "sample":
        if not text["generator"]:
            raise FormError("generator", "choose a generator (ListModels lists them)")
        return RenderCall(kind, "render_sample", (text["generator"],), kwargs)
    if text["model"]:
        kwargs["model"] = text["model"]
    image = (files.get("image") or [None])[0]
    if image is None:
        raise FormError("image", "choose a photo to start from")
    if kind == "dream":
        for name in ("guide", "mask"):
            if files.get(name):
                kwargs[name] = files[name][0]
        if text["layer"]:
            kwargs["layer"] = text["layer"]
        return RenderCall(kind, "render_dream", (image,), kwargs)
    presets = _presets([v for v in fields.get("preset", []) if v])
    if presets:
        kwargs["presets"] = presets
    return RenderCall(kind, "render_style", (image, list(files.get("style", []))), kwargs)
