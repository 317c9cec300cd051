#!/usr/bin/env bash
# Runs the otel-delta binary, drives it with the OpenTelemetry Python SDK (spans, and logs through Python's logging
# handler: python_logs.py), reads the tables with Python deltalake,
# checks its /metrics with the Python prometheus_client parsers against what was read back, then stops it with
# SIGTERM and checks it exits 0. First on a fresh local warehouse (plain, then over mTLS with certificates made
# here by the openssl CLI, then gRPC over TLS with a bearer token); then, when the S3 test
# server is up (OTEL_DELTA_TEST_S3 from tests/stores/env.sh), on an S3 table that `otel-delta optimize` compacts
# before Python reads it.
# Needs: a built target/debug/otel-delta, `pip install -r tests/interop/requirements.txt`, and openssl.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/debug/otel-delta
work=$(mktemp -d)
pid=
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT

# serve ARGS... : start on ports the kernel picks (port 0, so nothing else can hold them) and set $url to the
# traces URL and $metrics to the metrics URL the binary prints once it listens. With TLS, $curl_tls holds curl's
# options to reach the OTLP listener.
curl_tls=()
serve() {
  "$bin" serve --http-addr 127.0.0.1:0 --grpc-addr off --metrics-addr 127.0.0.1:0 "$@" >"$work/out" 2>&1 &
  pid=$!
  url=
  for _ in $(seq 300); do
    url=$(grep -Eo 'https?://127\.0\.0\.1:[0-9]*/v1/traces' "$work/out" | head -n1 || true)
    metrics=$(grep -o 'http://127\.0\.0\.1:[0-9]*/metrics' "$work/out" | head -n1 || true)
    [ -n "$url" ] && [ -n "$metrics" ] && curl -fs "${curl_tls[@]}" "${url%/v1/traces}/health" >/dev/null 2>&1 && return 0
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
  grep -q "stopped after committing every accepted record" "$work/out"
}

serve --warehouse "$work/wh" --flush-interval 200ms
LAYOUT=v2 python3 tests/interop/python_roundtrip.py "$url" "$work/wh/main/default/otel_otel_spans" 120
python3 tests/interop/scrape_metrics.py "$metrics" "$work/wh/main/default/otel_otel_spans"
LAYOUT=v2 python3 tests/interop/python_logs.py "${url%/v1/traces}/v1/logs" "$work/wh/main/default/otel_otel_logs"
stop
echo "interop (local tables, default v2 layout, VARIANT values decoded by pyspark): OK"

serve --warehouse "$work/wh1" --layout v1 --flush-interval 200ms
python3 tests/interop/python_roundtrip.py "$url" "$work/wh1/main/default/otel_otel_spans" 120
python3 tests/interop/scrape_metrics.py "$metrics" "$work/wh1/main/default/otel_otel_spans"
python3 tests/interop/python_logs.py "${url%/v1/traces}/v1/logs" "$work/wh1/main/default/otel_otel_logs"
stop
echo "interop (local tables, v1 layout): OK"

# mTLS: a CA signs the server's certificate (127.0.0.1) and the client's; the Python exporter trusts the CA and
# presents its certificate, and the binary must print an https:// URL.
tls=$work/tls
mkdir "$tls"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -days 1 -subj /CN=interop-ca -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
for name in server client; do
  openssl req "${ec[@]}" -subj "/CN=interop-$name" -keyout "$tls/$name.key" -out "$tls/$name.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tls/$name.ext"
  openssl x509 -req -in "$tls/$name.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial -days 1 \
    -extfile "$tls/$name.ext" -out "$tls/$name.pem" 2>/dev/null
done
curl_tls=(--cacert "$tls/ca.pem" --cert "$tls/client.pem" --key "$tls/client.key")
serve --warehouse "$work/wh2" --layout v1 --flush-interval 200ms \
  --tls-cert "$tls/server.pem" --tls-key "$tls/server.key" --tls-client-ca "$tls/ca.pem"
case "$url" in https://*) ;; *) echo "expected an https:// URL, got $url" >&2; exit 1 ;; esac
if curl -fs --cacert "$tls/ca.pem" "${url%/v1/traces}/health" >/dev/null 2>&1; then
  echo "a client without a certificate got through" >&2
  exit 1
fi
# requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override the exporter's own CA (psf/requests#3829): unset.
env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE \
  CA_FILE="$tls/ca.pem" CLIENT_CERT="$tls/client.pem" CLIENT_KEY="$tls/client.key" \
  python3 tests/interop/python_roundtrip.py "$url" "$work/wh2/main/default/otel_otel_spans" 120
python3 tests/interop/scrape_metrics.py "$metrics" "$work/wh2/main/default/otel_otel_spans"
stop
echo "interop (local table, over mTLS): OK"

# gRPC over TLS with a bearer token, the Python SDK's gRPC exporter (served on the same listener): a wrong token
# is refused (UNAUTHENTICATED) and writes nothing, the right one lands every span.
echo "interop-token" >"$work/tokens"
curl_tls=(--cacert "$tls/ca.pem")
serve --warehouse "$work/wh3" --flush-interval 200ms \
  --tls-cert "$tls/server.pem" --tls-key "$tls/server.key" --auth-token-file "$work/tokens"
env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE -u GRPC_DEFAULT_SSL_ROOTS_FILE_PATH \
  CA_FILE="$tls/ca.pem" OTLP_PROTOCOL=grpc BEARER_TOKEN=interop-token WRONG_TOKEN_FIRST=1 LAYOUT=v2 \
  python3 tests/interop/python_roundtrip.py "${url%/v1/traces}" "$work/wh3/main/default/otel_otel_spans" 120
TRANSPORT=grpc REFUSED=401 python3 tests/interop/scrape_metrics.py "$metrics" "$work/wh3/main/default/otel_otel_spans"
env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE -u GRPC_DEFAULT_SSL_ROOTS_FILE_PATH \
  CA_FILE="$tls/ca.pem" OTLP_PROTOCOL=grpc BEARER_TOKEN=interop-token LAYOUT=v2 \
  python3 tests/interop/python_logs.py "${url%/v1/traces}" "$work/wh3/main/default/otel_otel_logs"
stop
curl_tls=()
echo "interop (local table, gRPC over TLS with a bearer token): OK"

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
