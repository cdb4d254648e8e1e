#!/usr/bin/env bash
# Run every fuzz target (fuzz/fuzz_targets) within SECONDS of wall time in
# all (each target gets SECONDS x cores / targets, as many at a time as
# there are cores), and print executions, coverage (edges) and crashes
# per target. Corpora grow in fuzz/corpus/TARGET (seeded from
# fuzz/seeds/TARGET, made by fuzz/seeds.sh); crashes land in
# fuzz/artifacts/TARGET. Needs cargo-fuzz (`cargo install cargo-fuzz`);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain build with libFuzzer.
#
#   bench/fuzz.sh [SECONDS] [TARGET…]      (PER_TARGET=S sets each target's time instead)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
shift || true
export RUSTC_BOOTSTRAP=1
# No leak report at exit either (see below).
export ASAN_OPTIONS=detect_leaks=0
command -v cargo-fuzz >/dev/null || cargo install -q --locked cargo-fuzz
[ -d seeds ] || bash seeds.sh
cargo fuzz build -O >/dev/null 2>&1 || cargo fuzz build -O
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
per=${PER_TARGET:-$((secs * $(nproc) / ${#targets[@]}))}
[ "$per" -ge 1 ] || per=1
logs=../bench/out/fuzz
mkdir -p "$logs"
# The built binaries run directly, so editing the sources during a
# campaign does not make each target rebuild first. Leak detection is off:
# rayon's and the layer prefetcher's long-lived threads keep thread-local
# allocations that LeakSanitizer reports on every input; AddressSanitizer
# still checks every access.
bin=target/$(rustc -vV | awk '/^host:/ {print $2}')/release
run() {
    local t=$1 secs=$2 logs=$3 bin=$4
    mkdir -p "corpus/$t" "artifacts/$t"
    "$bin/$t" "corpus/$t" "seeds/$t" -artifact_prefix="artifacts/$t/" \
        -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 -timeout=20 -detect_leaks=0 \
        >"$logs/$t.log" 2>&1 || true
}
export -f run
# FUZZ_REPORT_ONLY=1 prints the table of the last run without fuzzing.
if [ -z "${FUZZ_REPORT_ONLY:-}" ]; then
    printf '%s\n' "${targets[@]}" | xargs -P "$(nproc)" -I{} bash -c 'run "$@"' _ {} "$per" "$logs" "$bin"
fi
printf '\n%-20s %14s %8s %8s %8s\n' target executions edges corpus crashes
total=0
for t in "${targets[@]}"; do
    l=$logs/$t.log
    execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$l" | tail -1)
    edges=$(grep -oE 'cov: [0-9]+' "$l" | tail -1 | awk '{print $2}')
    corpus=$(find "corpus/$t" -type f | wc -l)
    crashes=$(find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
    printf '%-20s %14s %8s %8s %8s\n' "$t" "${execs:-?}" "${edges:-?}" "$corpus" "$crashes"
    total=$((total + ${execs:-0}))
done
echo "total executions: $total (${per} s per target, $(nproc) at a time, ${#targets[@]} targets)"
