#!/usr/bin/env bash
# The test command: installs the tests' dependencies (idempotently), then runs every test of the
# workspace — unit, property and end-to-end (real OTLP exporter, real Envoy, separate processes).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${MERIDIAN_CACHE:-$HOME/.cache/meridian}/target}"
eval "$(scripts/install-test-deps.sh)"

cargo test --workspace --locked "$@"
