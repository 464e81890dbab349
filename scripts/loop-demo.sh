#!/usr/bin/env bash
# The closed loop with real gateways, as docs/BENCHMARKS.md measures it: three regions (an
# upstream behind a real Envoy exporting OTLP to its regional collector, every collector probing
# every region), the analyzer, and a real global entry point driven by `meridian agent`; steady
# traffic; eu-west-1 fails, agent and analyzer are killed and restarted, eu-west-1 recovers.
# Prints the timeline: onset → recommendation → applied → bad region below 1% of requests,
# failed requests, apply latency, failback steps.
#
# Usage: scripts/loop-demo.sh [envoy|traefik] [probe interval] [failure threshold]
#        (default: envoy, Route 53's fastest probes: 10s × 3)
set -euo pipefail
cd "$(dirname "$0")/.."

gateway="${1:-envoy}"
case "$gateway" in envoy|traefik) ;; *) echo "usage: $0 [envoy|traefik] [interval] [threshold]" >&2; exit 2 ;; esac
export MERIDIAN_LOOP_PROBE_INTERVAL="${2:-10s}"
export MERIDIAN_LOOP_PROBE_THRESHOLD="${3:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${MERIDIAN_CACHE:-$HOME/.cache/meridian}/target}"
eval "$(scripts/install-test-deps.sh)"

echo "closed loop through $gateway, probes $MERIDIAN_LOOP_PROBE_INTERVAL × $MERIDIAN_LOOP_PROBE_THRESHOLD (about two minutes)..." >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! MERIDIAN_LOG=error cargo test --locked --quiet --test "loop_$gateway" -- --nocapture >"$log" 2>&1; then
    cat "$log" >&2
    echo "the closed loop failed (full output above)" >&2
    exit 1
fi
grep -E "^(steady shares|$gateway |shares after)" "$log"
