#!/usr/bin/env bash
# Instruction-count regression guard: decode → columns → Parquet on a fixed input, counted by callgrind, for each
# table layout of spans (v1: perf/icount-baseline.txt, v2: perf/icount-baseline-v2.txt) and of logs
# (perf/icount-baseline-logs-v1.txt, -logs-v2.txt). Fails when a count grew by more than the tolerance. Wall-clock
# time never gates.
#   perf/icount.sh            # check
#   perf/icount.sh --record   # write new baselines (commit them with the change that explains them)
set -euo pipefail
cd "$(dirname "$0")/.."
TOLERANCE_PCT=${TOLERANCE_PCT:-3}
cargo build --locked --profile icount --bin otel-delta-icount >&2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
for layout in v1 v2 logs-v1 logs-v2; do
  valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect='*icount_pipeline*' \
    target/icount/otel-delta-icount "$layout" >&2 2>/dev/null
  count=$(awk '/^(summary|totals):/ {print $2; exit}' "$out")
  baseline_file=perf/icount-baseline.txt
  [[ $layout == v1 ]] || baseline_file=perf/icount-baseline-$layout.txt
  if [[ ${1:-} == --record ]]; then
    echo "$count" >"$baseline_file"
    echo "recorded $layout baseline: $count instructions" >&2
    continue
  fi
  baseline=$(cat "$baseline_file")
  python3 - "$layout" "$count" "$baseline" "$TOLERANCE_PCT" <<'PY' || status=1
import sys
layout, count, baseline, tolerance = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
change = (count - baseline) / baseline * 100
print(f"icount {layout}: {count:,} instructions, baseline {baseline:,} ({change:+.2f}%, tolerance +{tolerance}%)")
if change > tolerance:
    sys.exit(f"{layout}: instruction count regressed by {change:.2f}% (> {tolerance}%): profile it, or re-record the baselines with the change that explains it")
PY
done
exit "$status"
