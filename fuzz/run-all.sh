#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each and prints, per target, the executions, the crashes
# and the corpus size. With cargo-fuzz and a nightly toolchain it runs libFuzzer (coverage-guided,
# AddressSanitizer, debug assertions); otherwise the stable harness of fuzz-targets/tests/bounded.rs
# (seeds and mutated or random inputs, no coverage feedback), and says so.
#
# Usage: fuzz/run-all.sh SECONDS [TARGET...]
#   JOBS=N   run N targets at a time (default 1; each libFuzzer run uses one core)
#   STABLE=1 use the stable harness even where cargo-fuzz is available
#   SANITIZER=none|address|... cargo-fuzz's sanitizer (default address; none runs many times faster,
#            still with debug assertions and overflow checks)
#
# libFuzzer adds what it finds to fuzz/corpus-work/<target>/ (ignored by git), reading the seeds
# in fuzz/corpus/<target>/ too; crashes go to fuzz/artifacts/<target>/. Logs: fuzz/logs/.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:?usage: fuzz/run-all.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(serial virtio_mmio virtqueue pci edu kernel_loader qa_bank checkpoint_spec)
fi
jobs=${JOBS:-1}
mkdir -p logs

if [ -z "${STABLE:-}" ] && cargo +nightly fuzz --version >/dev/null 2>&1; then
    mode=libfuzzer
    sanitizer=${SANITIZER:-address}
    echo "libFuzzer (cargo-fuzz, nightly, sanitizer $sanitizer), ${seconds} s per target, ${jobs} at a time"
    cargo +nightly fuzz build -s "$sanitizer" >logs/build.log 2>&1 || { tail -20 logs/build.log; exit 1; }
else
    mode=stable sanitizer=none
    echo "no cargo-fuzz on a nightly toolchain here (or STABLE=1): the stable harness, without coverage feedback," \
        "${seconds} s per target, ${jobs} at a time"
    (cd .. && cargo test --release -p fuzz-targets --test bounded --no-run >fuzz/logs/build.log 2>&1) ||
        { tail -20 logs/build.log; exit 1; }
fi

# Runs one target and writes its summary line to logs/<target>.summary.
run_one() {
    local target=$1 log="logs/$1.log"
    local crashes_before
    crashes_before=$(find "artifacts/$target" -type f 2>/dev/null | wc -l)
    local status=0
    if [ "$mode" = libfuzzer ]; then
        mkdir -p "corpus-work/$target" "artifacts/$target"
        cargo +nightly fuzz run -s "$sanitizer" "$target" "corpus-work/$target" "corpus/$target" -- \
            -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=4096 -timeout=10 >"$log" 2>&1 || status=$?
        local executions corpus
        executions=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
        # libFuzzer's own count of the inputs it keeps (the folder also holds superseded ones).
        corpus=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2)
        local crashes=$(($(find "artifacts/$target" -type f | wc -l) - crashes_before))
        echo "$target: ${executions:-?} executions, $crashes crashes, exit $status, corpus ${corpus:-?}" \
            "(inputs/bytes; seeds: $(find "corpus/$target" -type f | wc -l))" >"logs/$target.summary"
    else
        (cd .. && FUZZ_SECONDS="$seconds" cargo test --release -p fuzz-targets --test bounded "$target" \
            -- --exact --nocapture) >"$log" 2>&1 || status=$?
        local line
        line=$(grep -E "^$target: [0-9]+ executions" "$log" | tail -1)
        if [ -n "$line" ]; then
            echo "$line" >"logs/$target.summary"
        else
            local crashes=$(($(find "artifacts/$target" -type f 2>/dev/null | wc -l) - crashes_before))
            echo "$target: stopped at a crash ($crashes saved in fuzz/artifacts/$target), exit $status" >"logs/$target.summary"
        fi
    fi
}
export -f run_one
export mode seconds sanitizer

printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}'
echo
for target in "${targets[@]}"; do
    cat "logs/$target.summary"
done
