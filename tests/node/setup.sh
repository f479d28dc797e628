#!/usr/bin/env bash
# Idempotent set-up for the Flight / Next.js tests (the project's test command runs it before pytest):
#   1. Debian chromium (apt-get, only when missing and running as root);
#   2. `npm ci` in tests/node (React's Flight client = the judge, playwright-core);
#   3. `npm ci && next build` in tests/fixtures/nextjs-app (telemetry off).
# Each step is skipped when its inputs have not changed since it last ran (stamp files).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
app="$(cd "$here/../fixtures/nextjs-app" && pwd)"
export NEXT_TELEMETRY_DISABLED=1 npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup.sh: node and npm are required (Node >= 20.9)" >&2
  exit 1
fi

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup.sh: installing Debian chromium"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup.sh: /usr/bin/chromium missing; install it with: apt-get install -y chromium" >&2
  fi
fi

npm_ci() {  # $1 = directory; re-run only when package-lock.json changed
  local dir="$1" stamp="$1/node_modules/.sluicegate-stamp"
  if [ -f "$stamp" ] && cmp -s "$dir/package-lock.json" "$stamp"; then
    echo "setup.sh: $(basename "$dir") dependencies up to date"
    return
  fi
  echo "setup.sh: npm ci in $dir"
  # The committed lock lists every platform's optional packages (e.g. all @next/swc-*), so `npm ci`
  # installs exactly it on any platform; a lock out of sync with package.json is an error to fix, not
  # something to paper over with `npm install`.
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$dir/package-lock.json" "$stamp"
}

npm_ci "$here"
npm_ci "$here/translate"
npm_ci "$app"
npm_ci "$here/consent"

# Rebuild the fixture app only when its sources, config or lock file changed.
sources_hash="$(cd "$app" && find app pages public next.config.mjs package-lock.json -type f -print0 | sort -z \
  | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
build_stamp="$app/.next/.sluicegate-stamp"
if [ -f "$app/.next/BUILD_ID" ] && [ -f "$build_stamp" ] && [ "$(cat "$build_stamp")" = "$sources_hash" ]; then
  echo "setup.sh: Next.js fixture build up to date"
else
  echo "setup.sh: next build (fixture app)"
  (cd "$app" && npx --no-install next build >/dev/null)
  echo "$sources_hash" > "$build_stamp"
fi
echo "setup.sh: done"
