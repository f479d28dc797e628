#!/usr/bin/env bash
# One entry point for a fresh machine (Debian + Python >= 3.11, access to PyPI/Debian/npm only):
#   ./run.sh demo   set up, then run the proxy on http://127.0.0.1:8080 in front of the bundled demo
#                   origin (:9000) and a mock LLM provider (/llm/v1/...)
#   ./run.sh test   set up (Python deps from requirements.lock, Chromium + Node deps for browser and
#                   React Flight tests), then ruff, mypy and the whole pytest suite; non-zero on any failure
# Set-up is idempotent: a stamp per lock-file hash skips work already done.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  echo "run.sh: installing Debian packages: $*" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

setup_python() {
  if [ ! -x .venv/bin/python ]; then
    if ! "$PY" -m venv .venv 2>/dev/null; then
      rm -rf .venv
      apt_install python3-venv
      "$PY" -m venv .venv
    fi
  fi
  local stamp
  stamp=".venv/.installed-$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
    touch "$stamp"
  fi
}

# Optional mypyc build of the HTML rewriter's hot modules (about 2x faster); rebuilt only when they change.
# Pure Python stays the fallback: a failed build is reported and cleaned up, never fatal.
build_fast_paths() {
  local html=src/sluicegate/pipeline/html stamp
  stamp=".venv/.mypyc-$(cat $html/charrefs.py $html/treesim.py $html/lexer.py $html/rewriter.py $html/rules.py \
    scripts/build_mypyc.py | sha256sum | cut -c1-16)"
  if [ -f "$stamp" ] && ls $html/lexer.*.so >/dev/null 2>&1; then return; fi
  echo "run.sh: compiling the HTML rewriter with mypyc" >&2
  if .venv/bin/python scripts/build_mypyc.py >.venv/mypyc-build.log 2>&1; then
    rm -f .venv/.mypyc-*
    touch "$stamp"
  else
    echo "run.sh: mypyc build failed (see .venv/mypyc-build.log); running pure Python" >&2
    .venv/bin/python scripts/build_mypyc.py --clean >/dev/null 2>&1 || true
  fi
}

setup_test_system() {
  local need=()
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v node >/dev/null 2>&1 || need+=(nodejs)
  command -v npm >/dev/null 2>&1 || need+=(npm)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)  # self-signed certificates for the TLS origin tests
  if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
  if [ -x tests/node/setup.sh ]; then tests/node/setup.sh; fi
}

cmd=${1:-}
shift || true
case "$cmd" in
  demo)
    setup_python
    build_fast_paths
    exec .venv/bin/sluicegate demo "$@"
    ;;
  test)
    setup_python
    build_fast_paths
    setup_test_system
    .venv/bin/ruff check src tests bench
    .venv/bin/mypy
    .venv/bin/pytest "$@"
    # The compiled modules ran above; the pure-Python path must stay correct too.
    SLUICEGATE_PURE_PYTHON=1 .venv/bin/pytest -q -p no:cacheprovider tests/unit/html tests/unit/core tests/unit/flight
    ;;
  setup)
    setup_python
    ;;
  *)
    echo "usage: ./run.sh demo|test [args...]" >&2
    exit 2
    ;;
esac
