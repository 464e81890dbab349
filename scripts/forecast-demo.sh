#!/usr/bin/env bash
# Forecast evaluation over the demo's RED series (docs/BENCHMARKS.md, "Forecasting").
#
# Generates HISTORY of the demo's traffic (its days are --day long), lets the analyzer derive
# the RED series, exports request rate and p99 latency of every series as `timestamp,value`
# CSV through the SQL API, and runs `meridian forecast` (rolling origin, h = 1..12) on them
# with the demo's day as the season.
#
#   scripts/forecast-demo.sh [OUT_DIR]      (MERIDIAN_BIN, HISTORY, DAY override the defaults)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${MERIDIAN_BIN:-${CARGO_TARGET_DIR:-target}/release/meridian}
HISTORY=${HISTORY:-6h}
DAY=${DAY:-10m}
OUT=${1:-/tmp/meridian-forecast-demo}
rm -rf "$OUT"
mkdir -p "$OUT/series"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ports=(--otlp-grpc-addr 127.0.0.1:0 --otlp-http-addr 127.0.0.1:0 --pg-addr 127.0.0.1:0)

echo "generating $HISTORY of demo traffic (days of $DAY)…"
"$BIN" --data-dir "$OUT/data" demo --history "$HISTORY" --day "$DAY" --duration 1s \
  --http-addr 127.0.0.1:0 "${ports[@]}" >/dev/null

port=$(free_port)
MERIDIAN_LOG=warn "$BIN" --data-dir "$OUT/data" standalone --http-addr "127.0.0.1:$port" "${ports[@]}" >/dev/null &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.2
done
query() {
  curl -sf "http://127.0.0.1:$port/api/v1/sql" -H 'content-type: application/json' \
    -H 'accept: text/csv' -d "$(python3 -c 'import json,sys; print(json.dumps({"query": sys.argv[1]}))' "$1")"
}
query "SELECT DISTINCT region, http_route FROM red ORDER BY region, http_route" | tail -n +2 |
while IFS=, read -r region route; do
  name=$(echo "$region${route}" | tr -c 'a-zA-Z0-9\n-' '_')
  for metric in request_rate latency_p99_ms; do
    query "SELECT time AS timestamp, $metric AS value FROM red
           WHERE region = '$region' AND http_route = '$route' ORDER BY time" \
      > "$OUT/series/${name}__$metric.csv"
  done
done
kill $server
wait $server 2>/dev/null || true
trap - EXIT
echo "$(ls "$OUT/series" | wc -l) series exported to $OUT/series"
season=$(python3 -c "import sys,re; v=sys.argv[1]; m={'s':1,'m':60,'h':3600}; print(int(v[:-1])*m[v[-1]])" "$DAY")
"$BIN" forecast --input "$OUT/series" --horizon 12 --season-secs "$season" --output "$OUT/forecasts"
