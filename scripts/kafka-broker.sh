#!/usr/bin/env bash
# The Kafka-protocol broker for the tests: installs `tansu` (pinned, from crates.io, with its
# in-memory storage engine) once into the cache, then, with `start`, runs one on a free loopback
# port until the calling shell exits.
#
#   scripts/kafka-broker.sh install     # just install; prints `export MERIDIAN_TANSU_BIN=...`
#   eval "$(scripts/kafka-broker.sh start)"   # also start one; exports MERIDIAN_TEST_KAFKA_BROKERS
set -euo pipefail

CACHE="${MERIDIAN_CACHE:-$HOME/.cache/meridian}"
TANSU_VERSION="0.6.0"
ROOT="$CACHE/tansu-$TANSU_VERSION"
BIN="$ROOT/bin/tansu"

if [[ ! -x "$BIN" ]]; then
  echo "installing tansu $TANSU_VERSION (first time only; takes a while)" >&2
  CARGO_TARGET_DIR="$CACHE/tansu-target" cargo install tansu --version "$TANSU_VERSION" \
    --features dynostore --locked --root "$ROOT" --quiet >&2
  rm -rf "$CACHE/tansu-target"
fi
echo "export MERIDIAN_TANSU_BIN=$BIN"

if [[ "${1:-install}" == "start" ]]; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  LOG="$CACHE/tansu-$PORT.log"
  # Detached from our stdout so `eval "$(...)"` returns; stopped by the caller's trap.
  nohup "$BIN" broker --listener-url "tcp://127.0.0.1:$PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$PORT" --storage-engine memory://tansu/ \
    >"$LOG" 2>&1 </dev/null &
  PID=$!
  for _ in $(seq 1 100); do
    if (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    sleep 0.1
  done
  (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || { echo "tansu did not start; see $LOG" >&2; exit 1; }
  echo "export MERIDIAN_TEST_KAFKA_BROKERS=127.0.0.1:$PORT"
  echo "export MERIDIAN_TANSU_PID=$PID"
fi
