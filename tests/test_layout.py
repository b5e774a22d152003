"""The architecture the tree promises, checked on the source: no import circles, no private names
across packages, engines free of gRPC, files and functions within their size."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each folder's import name (pyproject.toml's package-dir); the generated stubs are left out.
PACKAGES = {"proto/dreamrender": "dreamrender", "server": "dreamrender.server", "client": "dreamrender.client",
            "models": "dreamrender.models", "web": "dreamrender.web"}
GENERATED = ("dreamrender.v1",)


def _modules() -> dict[str, tuple[Path, bool]]:
    """{module name: (file, is a package __init__)} for every project source file."""
    out: dict[str, tuple[Path, bool]] = {}
    for folder, name in PACKAGES.items():
        base = ROOT / folder
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("")
            parts = [] if rel.parts == ("__init__",) else list(rel.parts)
            is_pkg = bool(parts) and parts[-1] == "__init__" or not parts
            if parts and parts[-1] == "__init__":
                parts = parts[:-1]
            mod = ".".join([name, *parts])
            if not mod.startswith(GENERATED) and "__pycache__" not in path.parts:
                out[mod] = (path, is_pkg)
    return out


MODULES = _modules()


def _imports(mod: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in `mod`, lazy ones included."""
    path, is_pkg = MODULES[mod]
    package = mod if is_pkg else mod.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            out.append((base, [a.name for a in node.names], node.lineno))
    return out


def _targets(mod: str) -> set[str]:
    """Project modules that `mod` imports (a name that is itself a module counts as that module)."""
    found = set()
    for base, names, _line in _imports(mod):
        subs = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
        found.update(subs)
        if base in MODULES and len(subs) < len(names) or (base in MODULES and not names):
            found.add(base)
    # Importing a module always initialises its parent packages first: those edges are not circles.
    return {t for t in found if t != mod and not mod.startswith(t + ".")}


def test_no_import_circles():
    graph = {m: _targets(m) for m in MODULES}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                pytest.fail("import circle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def _owner(mod: str) -> str:
    """The package a module belongs to (a package owns itself)."""
    return mod if MODULES.get(mod, (None, False))[1] else mod.rsplit(".", 1)[0]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_private_names_across_packages():
    bad = []
    for mod in MODULES:
        mine = _owner(mod)
        for base, names, line in _imports(mod):
            if not base.startswith("dreamrender"):
                continue
            parts = base.split(".")
            for i, part in enumerate(parts):  # a private module somewhere in the path
                if _private(part) and ".".join(parts[:i]) != mine:
                    bad.append(f"{mod}:{line} imports {base}")
            owner = base if base in MODULES and MODULES[base][1] else base.rsplit(".", 1)[0]
            for n in names:
                if _private(n) and owner != mine and f"{base}.{n}" not in MODULES or \
                        _private(n) and f"{base}.{n}" in MODULES and base != mine:
                    bad.append(f"{mod}:{line} imports {n} from {base}")
    assert not bad, "\n".join(bad)


def test_engines_import_no_grpc_or_stubs():
    engine = [m for m in MODULES if m.startswith("dreamrender.server.engine")]
    assert "dreamrender.server.engine.style" in engine and "dreamrender.server.engine.dream" in engine
    bad = []
    for mod in engine:
        for base, _names, line in _imports(mod):
            top = base.split(".")
            if top[0] in ("grpc", "grpc_status", "grpc_health", "grpc_reflection") or base.startswith("google.protobuf") \
                    or base.startswith("dreamrender.v1") or (base.startswith("dreamrender.server")
                                                             and not base.startswith("dreamrender.server.engine")):
                bad.append(f"{mod}:{line} imports {base}")
    assert not bad, "\n".join(bad)


def test_the_gateway_is_a_client_and_dreamd_knows_nothing_of_it():
    """dreamweb reaches dreamd through the SDK only (no engines, no torch); dreamd stays pure gRPC."""
    bad = []
    for mod in MODULES:
        for base, _names, line in _imports(mod):
            top = base.split(".")[0]
            if mod.startswith("dreamrender.web") and (base.startswith(("dreamrender.server", "dreamrender.models"))
                                                      or top in ("torch", "onnxruntime")):
                bad.append(f"{mod}:{line} imports {base}")
            if not mod.startswith("dreamrender.web") and (base.startswith("dreamrender.web")
                                                          or top in ("starlette", "uvicorn")):
                bad.append(f"{mod}:{line} imports {base}")
    assert "dreamrender.client" in {b for m in MODULES if m.startswith("dreamrender.web") for b, _, _ in _imports(m)}
    assert not bad, "\n".join(bad)


def test_the_checker_sees_what_it_checks():
    """The checks above pass on a tree with no circles: make sure they would see one."""
    assert "dreamrender.server.engine.style" in _targets("dreamrender.server.requests")
    assert "dreamrender.settings" in _targets("dreamrender.client._sdk")
    assert _owner("dreamrender.models._catalog") == "dreamrender.models"


def test_files_and_functions_stay_small():
    too_long, big_files = [], []
    for mod, (path, _pkg) in MODULES.items():
        text = path.read_text()
        if text.count("\n") > 500:
            big_files.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 50:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert not big_files and not too_long, "\n".join(big_files + too_long)
