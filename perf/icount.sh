#!/usr/bin/env bash
# Instruction-count regression guard: decode → columns → Parquet on a fixed input, counted by callgrind, compared
# with perf/icount-baseline.txt. Fails when the count grew by more than the tolerance. Wall-clock time never gates.
#   perf/icount.sh            # check
#   perf/icount.sh --record   # write a new baseline (commit it with the change that explains it)
set -euo pipefail
cd "$(dirname "$0")/.."
TOLERANCE_PCT=${TOLERANCE_PCT:-3}
cargo build --locked --profile icount --bin otel-delta-icount >&2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect='*icount_pipeline*' \
  target/icount/otel-delta-icount >&2 2>/dev/null
count=$(awk '/^(summary|totals):/ {print $2; exit}' "$out")
baseline_file=perf/icount-baseline.txt
if [[ ${1:-} == --record ]]; then
  echo "$count" >"$baseline_file"
  echo "recorded baseline: $count instructions" >&2
  exit 0
fi
baseline=$(cat "$baseline_file")
python3 - "$count" "$baseline" "$TOLERANCE_PCT" <<'PY'
import sys
count, baseline, tolerance = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
change = (count - baseline) / baseline * 100
print(f"icount: {count:,} instructions, baseline {baseline:,} ({change:+.2f}%, tolerance +{tolerance}%)")
if change > tolerance:
    sys.exit(f"instruction count regressed by {change:.2f}% (> {tolerance}%): profile it, or re-record the baseline with the change that explains it")
PY
