#!/usr/bin/env bash
# A/B of two collector binaries on the same load, alternating (A B, then B A, …) so the machine's drift and each
# run's after-effects hit both alike.
# Each run: a fresh collector (default settings) on a fresh local table, `otel-delta-load` at peak for DURATION
# seconds, every acknowledged span counted back from the table, SIGTERM. Writes perf/results/<date>-ab.md with every
# run and the median per case and binary.
#
#   perf/ab.sh OLD_BINARY NEW_BINARY [LOAD_BINARY]
#   ROUNDS=3 DURATION=15 CASES="small large mixed" perf/ab.sh /tmp/old/otel-delta target/release/otel-delta
# LOAD_BINARY defaults to target/release/otel-delta-load (build it with `cargo build --release --bin otel-delta-load`).
# TLS or auth on one side (a wrapper script that adds --tls-cert/--tls-key or --auth-token-file to `serve`):
# SCHEME_A / SCHEME_B (`http` by default, or `https`), CA_CERT (the PEM the load and curl trust), BEARER_TOKEN_A /
# BEARER_TOKEN_B (sent with every request). The `logs` case sends log records to /v1/logs and counts them back from
# the logs table (needs binaries that take logs).
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?old collector binary}
B=${2:?new collector binary}
LOAD=${3:-target/release/otel-delta-load}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-15}
CASES=${CASES:-"small large mixed"}
declare -A CONNECTIONS=([small]=1024 [large]=256 [mixed]=512 [logs]=1024)
out=perf/results/$(date -u +%Y-%m-%d-%H%M)-ab.md
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT

run() {
  local label=$1 binary=$2 case=$3 work port pid scheme token path=/v1/traces table=t
  local -a curl_trust=() load_trust=() auth=()
  scheme=$(eval echo "\${SCHEME_$label:-http}")
  token=$(eval echo "\${BEARER_TOKEN_$label:-}")
  if [[ $scheme == https ]]; then
    curl_trust=(--cacert "${CA_CERT:?CA_CERT for https}")
    load_trust=(--ca-cert "$CA_CERT")
  fi
  if [[ -n $token ]]; then auth=(--bearer-token "$token"); fi
  # Logs land in the table beside --table (`t` → `t_logs`).
  if [[ $case == logs ]]; then path=/v1/logs table=t_logs; fi
  work=$(mktemp -d)
  port=$((20000 + RANDOM % 12000))  # below the ephemeral range the load's own connections use
  # Metrics on a port of their own through the environment: a binary from before --metrics-addr ignores it.
  OTEL_DELTA_METRICS_ADDR=127.0.0.1:0 \
    "$binary" serve --http-addr "127.0.0.1:$port" --grpc-addr off --table "$work/t" >"$work/log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -fs "${curl_trust[@]}" "$scheme://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
  "$LOAD" --endpoint "$scheme://127.0.0.1:$port$path" "${load_trust[@]}" "${auth[@]}" \
    --profile "$case" --connections "${CONNECTIONS[$case]}" \
    --duration "$DURATION" --pool-mib 384 --collector-pid "$pid" --table "$work/$table" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); r["label"]=sys.argv[1]; r["case"]=sys.argv[2]; print(json.dumps(r))' \
      "$label" "$case" | tee -a "$runs"
  kill -TERM "$pid"; wait "$pid" || true
  rm -rf "$work"
}

for round in $(seq "$ROUNDS"); do
  for case in $CASES; do
    echo "round $round, $case" >&2
    # Who goes first alternates by round, and each run starts after the last one's files reached the disk: a
    # run's write-back must not slow the next one's fsyncs.
    if ((round % 2)); then order="A B"; else order="B A"; fi
    for label in $order; do
      sync
      if [[ $label == A ]]; then run A "$A" "$case"; else run B "$B" "$case"; fi
    done
  done
done

python3 - "$runs" "$A" "$B" "$DURATION" "$ROUNDS" >"$out" <<'PY'
import json, statistics, subprocess, sys
path, a, b, duration, rounds = sys.argv[1:]
runs = [json.loads(line) for line in open(path)]
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True)
print(f"# A/B: {a} (A) vs {b} (B)\n")
print(f"- machine: {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores,{cpu.stdout.strip() and ' ' + cpu.stdout.strip()}; "
      "collector and load generator on the same machine")
print(f"- {rounds} rounds, alternating A and B, {duration} s per run, default collector settings\n")
print("| case | binary | rows/s (median; spans, or log records) | MB/s (median) | p99 ack ms (median) | peak RSS MiB (median) | runs | all rows verified | errors |")
print("|---|---|---|---|---|---|---|---|---|")
for case in dict.fromkeys(r["case"] for r in runs):
    for label in ("A", "B"):
        rs = [r for r in runs if r["case"] == case and r["label"] == label]
        med = lambda k: statistics.median(r[k] for r in rs)
        errors = sum(sum(r["errors"].values()) for r in rs)
        each = ", ".join(format(r["spans_per_s"], ",.0f") for r in rs)
        verified = all(r["verified"] for r in rs)
        print(f"| {case} | {label} | {med('spans_per_s'):,.0f} | {med('mb_per_s'):.0f} | {med('p99_ms'):.0f} | "
              f"{med('collector_peak_rss_mib'):.0f} | {each} | {verified} | {errors} |")
PY
echo "wrote $out" >&2
