#!/usr/bin/env bash
# Runs the libFuzzer targets one after another (one fuzzer at a time: they are CPU-bound).
#   Fuzz/run.sh runs N [target...]   each target for N executions (-runs=N)
#   Fuzz/run.sh time S [target...]   each target for S seconds (-max_total_time=S; the CI smoke)
# Working corpora grow under Fuzz/.work/<target> (seeded from Fuzz/corpus/<target>, which is not written),
# crashes land in Fuzz/artifacts/<target>/, logs in Fuzz/logs/<target>.log. Inputs that once crashed a target are
# kept in Fuzz/regressions/<target>/ and run first. Exit status 1 if any target failed.
set -u
cd "$(dirname "$0")"
mode=$1; n=$2; shift 2
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(json path http-response admin-body declarative http-request gateway-conf
                                     declarative-validate resp)
export SWIFT_BACKTRACE=enable=no   # the Swift backtracer and ASan's handler fight over a crash
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
# Allocations made inside a global's one-time initializer (swift_once) are not per-input leaks; LSan cannot
# see Swift's pointers with spare-bit tags in those globals, so it reports them (lsan.supp).
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/lsan.supp:print_suppressions=0}
status=0
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p ".work/$t" "artifacts/$t"
    if [ "$mode" = time ]; then limit=(-max_total_time="$n"); else limit=(-runs="$n"); fi
    echo "== fuzz-$t ${limit[*]} (log: Fuzz/logs/$t.log)"
    ".build/release/fuzz-$t" "${limit[@]}" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -max_len=${FUZZ_MAX_LEN:-2048} \
        -artifact_prefix="artifacts/$t/" ".work/$t" "corpus/$t" $( [ -d "regressions/$t" ] && echo "regressions/$t" ) \
        > "logs/$t.log" 2>&1
    rc=$?
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" "logs/$t.log" | tr '\n' ' '; echo
    if [ $rc -ne 0 ]; then echo "fuzz-$t FAILED (exit $rc): see Fuzz/logs/$t.log and Fuzz/artifacts/$t/"; status=1; fi
done
exit $status
