#!/usr/bin/env bash
# Runs the otel-delta binary on a fresh warehouse, drives it with the OpenTelemetry Python SDK, reads the table
# with Python deltalake, then stops it with SIGTERM and checks it exits 0.
# Needs: a built target/debug/otel-delta, and `pip install -r tests/interop/requirements.txt`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/debug/otel-delta
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
"$bin" serve --http-addr "127.0.0.1:$port" --warehouse "$work/wh" --flush-interval 200ms >"$work/out" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
python3 tests/interop/python_roundtrip.py "http://127.0.0.1:$port/v1/traces" "$work/wh/main/default/otel_otel_spans"
kill -TERM "$pid"
wait "$pid"
grep -q "stopped after committing every accepted span" "$work/out"
echo "interop: OK"
