#!/usr/bin/env bash
# Fuzz every parser of untrusted input (cargo fuzz, libFuzzer + AddressSanitizer) and
# print one row per target: executions, corpus size, findings.
#
#   bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]     (default: 1800 s, every target)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). The corpus
# grows in fuzz/corpus/<target>/ (seeded from fuzz/seeds/<target>/); every input that
# fails is copied to fuzz/regressions/<target>/, which the unit tests replay
# (src/fuzz.rs), so a finding stays a test once fixed. JOBS=2 runs two targets at once.
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-1800}; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(ls fuzz/fuzz_targets | sed 's/\.rs$//')
jobs=${JOBS:-1}
out=fuzz/out; mkdir -p "$out"
cargo +nightly fuzz build -O >/dev/null 2>&1 || { cargo +nightly fuzz build -O; exit 1; }

run_one() {
  local t=$1 log="$out/$1.log"
  mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t"
  # -fork: a finding is recorded and the run goes on (no stop at the first crash).
  cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1
  for a in fuzz/artifacts/"$t"/*; do
    [ -f "$a" ] && cp -n "$a" "fuzz/regressions/$t/"
  done
}

running=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/artifacts/$t"
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
done
wait

printf '%-20s %14s %8s %9s\n' target executions corpus findings
for t in "${targets[@]}"; do
  log="$out/$t.log"
  execs=$(grep -aoE 'stat::number_of_executed_units: *[0-9]+' "$log" | awk '{s+=$2} END{print s+0}')
  [ "$execs" -gt 0 ] || execs=$(grep -aoE '#[0-9]+' "$log" | tail -1 | tr -d '#')
  corpus=$(ls "fuzz/corpus/$t" | wc -l)
  found=$(ls "fuzz/artifacts/$t" 2>/dev/null | wc -l)
  printf '%-20s %14s %8s %9s\n' "$t" "${execs:-?}" "$corpus" "$found"
done
