#!/usr/bin/env bash
# The test command: installs the tests' dependencies (idempotently), then runs every test of the
# workspace — unit, property and end-to-end (real OTLP exporter, real Envoy and Traefik, a real
# Kafka-protocol broker, separate processes).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${MERIDIAN_CACHE:-$HOME/.cache/meridian}/target}"
eval "$(scripts/install-test-deps.sh)"
# A Kafka-protocol broker (tansu) on loopback for the Kafka tests, stopped when the tests end.
eval "$(scripts/kafka-broker.sh start)"
trap 'kill "$MERIDIAN_TANSU_PID" 2>/dev/null || true' EXIT

# The example a newcomer runs first must keep working: it asserts that a span reaches SQL.
cargo run --locked --quiet --example standalone >/dev/null
cargo test --workspace --locked "$@"
# A short run of every fuzz target (docs/security.md; the long runs' figures: docs/BENCHMARKS.md).
scripts/fuzz.sh "${MERIDIAN_FUZZ_SECONDS:-15}"
