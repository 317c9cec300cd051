#!/usr/bin/env bash
# Runs the otel-delta binary, drives it with the OpenTelemetry Python SDK, reads the table with Python deltalake,
# checks its /metrics with the Python prometheus_client parsers against what was read back, then stops it with
# SIGTERM and checks it exits 0. First on a fresh local warehouse; then, when the S3 test
# server is up (OTEL_DELTA_TEST_S3 from tests/stores/env.sh), on an S3 table that `otel-delta optimize` compacts
# before Python reads it.
# Needs: a built target/debug/otel-delta, and `pip install -r tests/interop/requirements.txt`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/debug/otel-delta
work=$(mktemp -d)
pid=
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT

# serve ARGS... : start on ports the kernel picks (port 0, so nothing else can hold them) and set $url to the
# traces URL and $metrics to the metrics URL the binary prints once it listens.
serve() {
  "$bin" serve --http-addr 127.0.0.1:0 --grpc-addr off --metrics-addr 127.0.0.1:0 "$@" >"$work/out" 2>&1 &
  pid=$!
  url=
  for _ in $(seq 300); do
    url=$(grep -o 'http://127\.0\.0\.1:[0-9]*/v1/traces' "$work/out" | head -n1 || true)
    metrics=$(grep -o 'http://127\.0\.0\.1:[0-9]*/metrics' "$work/out" | head -n1 || true)
    [ -n "$url" ] && [ -n "$metrics" ] && curl -fs "${url%/v1/traces}/health" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$work/out"; return 1; }
    sleep 0.1
  done
  cat "$work/out"
  return 1
}
stop() {
  kill -TERM "$pid"
  wait "$pid"
  pid=
  grep -q "stopped after committing every accepted span" "$work/out"
}

serve --warehouse "$work/wh" --flush-interval 200ms
LAYOUT=v2 python3 tests/interop/python_roundtrip.py "$url" "$work/wh/main/default/otel_otel_spans" 120
python3 tests/interop/scrape_metrics.py "$metrics" "$work/wh/main/default/otel_otel_spans"
stop
echo "interop (local table, default v2 layout, VARIANT values decoded by pyspark): OK"

serve --warehouse "$work/wh1" --layout v1 --flush-interval 200ms
python3 tests/interop/python_roundtrip.py "$url" "$work/wh1/main/default/otel_otel_spans" 120
python3 tests/interop/scrape_metrics.py "$metrics" "$work/wh1/main/default/otel_otel_spans"
stop
echo "interop (local table, v1 layout): OK"

if [ -n "${OTEL_DELTA_TEST_S3:-}" ]; then
  table="$OTEL_DELTA_TEST_S3/interop-$(date +%s)-$RANDOM"
  serve --table "$table" --flush-interval 100ms
  # Several exports with a short flush interval: several small files for optimize to compact.
  EXPORT_ONLY=1 LAYOUT=v2 python3 tests/interop/python_roundtrip.py "$url" "$table" 120
  EXPORT_ONLY=1 LAYOUT=v2 python3 tests/interop/python_roundtrip.py "$url" "$table" 120
  stop
  "$bin" optimize --table "$table" | tee "$work/optimize"
  grep -Eq "rewritten as [1-9]" "$work/optimize"
  LAYOUT=v2 python3 tests/interop/python_roundtrip.py - "$table" 240
  echo "interop (S3 table, after optimize): OK"
elif [ "${OTEL_DELTA_REQUIRE_STORES:-}" = 1 ]; then
  echo "OTEL_DELTA_REQUIRE_STORES=1 but OTEL_DELTA_TEST_S3 is unset: source tests/stores/env.sh" >&2
  exit 1
fi
