#!/bin/bash
# Outage → failover: time from killing a probed endpoint to weight 0 on GET /api/v1/routing,
# with Route 53's fastest settings (10 s × 3). Real processes on loopback ports 28081-28392.
# Usage: MERIDIAN_BIN=path/to/meridian scripts/measure-failover.sh
B=${MERIDIAN_BIN:-${CARGO_TARGET_DIR:-target}/debug/meridian}
W=$(mktemp -d); cd "$W"; mkdir -p a c1 c2
python3 -m http.server 28081 --bind 127.0.0.1 >/dev/null 2>&1 & EP1=$!
python3 -m http.server 28082 --bind 127.0.0.1 >/dev/null 2>&1 & EP2=$!
MERIDIAN_LOG=error $B analyzer --data-dir a --http-addr 127.0.0.1:28380 --pg-addr 127.0.0.1:28432 >/dev/null 2>&1 & AN=$!
for r in us-east-1 eu-west-1; do
cat > c-$r.toml <<T
[[collector.probes]]
name = "api-eu"
region = "eu-west-1"
url = "http://127.0.0.1:28081/"
interval = "10s"
failure_threshold = 3
[[collector.probes]]
name = "api-us"
region = "us-east-1"
url = "http://127.0.0.1:28082/"
interval = "10s"
failure_threshold = 3
T
done
MERIDIAN_LOG=error $B collector --config c-us-east-1.toml --region us-east-1 --data-dir c1 --http-addr 127.0.0.1:28391 --otlp-grpc-addr 127.0.0.1:0 --otlp-http-addr 127.0.0.1:0 --forward-to http://127.0.0.1:28380 >/dev/null 2>&1 & C1=$!
MERIDIAN_LOG=error $B collector --config c-eu-west-1.toml --region eu-west-1 --data-dir c2 --http-addr 127.0.0.1:28392 --otlp-grpc-addr 127.0.0.1:0 --otlp-http-addr 127.0.0.1:0 --forward-to http://127.0.0.1:28380 >/dev/null 2>&1 & C2=$!
sleep 25
kill $EP1; T0=$(date +%s.%N)
while true; do
  W=$(curl -s 127.0.0.1:28380/api/v1/routing | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["services"]["*"]["regions"]["eu-west-1"]["weight"])' 2>/dev/null)
  if [ "$W" = "0" ]; then T1=$(date +%s.%N); break; fi
  sleep 0.2
done
echo "outage→failover: $(python3 -c "print(round($T1-$T0,1))") s (10s x 3)"
curl -s 127.0.0.1:28380/api/v1/routing | python3 -m json.tool | grep -A3 '"eu-west-1"' | head -8
kill $C1 $C2 $AN $EP2
