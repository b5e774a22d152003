#!/usr/bin/env bash
# Refresh deploy/constraints.txt, the lock that the quickstart, .ci/run and the image install from:
# every package of dreamrender[server,test,deploy,gpu,web] at an exact version, for CPython 3.11 on
# Linux x86_64. Run it after changing pyproject.toml's dependencies or deploy/constraints.in, or to
# take newer releases; then run the tests (README command 2) and commit both files.
#
#   bash deploy/lock.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${TOOLS:-$(mktemp -d)/pip-tools}
python3 -m venv "$TOOLS"
"$TOOLS/bin/pip" install -q --disable-pip-version-check "pip-tools==7.6.2"
"$TOOLS/bin/pip-compile" -q --upgrade --strip-extras --no-emit-index-url --no-emit-find-links \
  --extra server --extra test --extra deploy --extra gpu --extra web -c deploy/constraints.in \
  -o deploy/constraints.txt pyproject.toml
# A CPU wheel on disk compiles to torch==X+cpu; the lock pins the release, whose builds for CPU
# (PyPI, or PyTorch's cpu index) and CUDA (PyTorch's cu128 index) then all satisfy it.
sed -i -E 's/^torch==([^+ ]+)\+[a-z0-9]+$/torch==\1/' deploy/constraints.txt
echo "deploy/constraints.txt: $(grep -c '==' deploy/constraints.txt) pinned packages"
