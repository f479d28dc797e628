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
    # the build requirements of pyproject.toml (setuptools, the pinned mypy): sluicegate is built without isolation
    .venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' \
      | xargs .venv/bin/python -m pip install -q --disable-pip-version-check
    touch "$stamp"
  fi
  build_sluicegate
}

# sluicegate itself, by the same build as `pip install .` (setup.py: the hot modules compiled with mypyc,
# pure Python when that fails): an editable install whose compiled modules sit in src/ beside their sources.
# Rebuilt only when what the build reads changed (stamp in .venv). A stale build never runs: the run time
# checks each compiled module against its source (docs/build.md).
build_sluicegate() {
  if ! .venv/bin/python scripts/build_mypyc.py --if-changed >.venv/build.log 2>&1; then
    cat .venv/build.log >&2
    echo "run.sh: building sluicegate failed (log above)" >&2
    exit 1
  fi
  if [ -s .venv/build.log ]; then grep -h "^fast paths:" .venv/build.log | sed 's/^/run.sh: /' >&2 || true; fi
}

setup_test_system() {
  local need=()
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v node >/dev/null 2>&1 || need+=(nodejs)
  command -v npm >/dev/null 2>&1 || need+=(npm)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)  # self-signed certificates for the TLS origin tests
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)  # teams: shared limit counters
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)  # teams: shared keys + ledger
  command -v curl >/dev/null 2>&1 || need+=(curl)  # an h2-capable client for the TLS/ALPN tests
  # tests/packaging/test_dockerfile.py: Debian's Python stands in for the image's (venv + headers for mypyc)
  [ -f /usr/include/python3.11/Python.h ] && [ -f /usr/lib/python3.11/ensurepip/__init__.py ] \
    || need+=(python3.11-venv python3.11-dev)
  command -v ip >/dev/null 2>&1 || need+=(iproute2)  # ... and its network namespace (loopback up)
  if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
  if [ -x tests/node/setup.sh ]; then tests/node/setup.sh; fi
}

cmd=${1:-}
shift || true
case "$cmd" in
  demo)
    setup_python
    exec .venv/bin/sluicegate demo "$@"
    ;;
  test)
    setup_python
    setup_test_system
    .venv/bin/ruff check src tests bench
    .venv/bin/mypy
    .venv/bin/pytest "$@"
    # The compiled modules ran above; the pure-Python path must stay correct too.
    SLUICEGATE_PURE_PYTHON=1 .venv/bin/pytest -q -p no:cacheprovider tests/unit/pipeline tests/unit/publisher tests/unit/upstream
    ;;
  setup)
    setup_python
    ;;
  *)
    echo "usage: ./run.sh demo|test [args...]" >&2
    exit 2
    ;;
esac
