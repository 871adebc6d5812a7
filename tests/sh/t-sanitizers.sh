# The unit tests (config, topology, policy, rewrite, concurrency and fork) built with ASan+UBSan
# and with TSan; the fuzz targets for a short bounded run.
. "$(dirname "$0")/../lib.sh"
for kind in asan tsan; do
    dir=$ROOT/build-$kind/tests
    if [ ! -d "$dir" ]; then ok 0 "$kind # SKIP not built (make sanitizers)"; continue; fi
    for t in "$dir"/test_*; do
        out=$(cd "$ROOT" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
              UBSAN_OPTIONS=print_stacktrace=1 timeout 300 "$t" 2>&1)
        rc=$?
        ok $([ $rc = 0 ] && ! grep -q 'not ok\|ERROR: \|WARNING: ThreadSanitizer\|runtime error' <<<"$out"; echo $?) \
           "$kind: $(basename "$t") ($(grep -c '^ok' <<<"$out") checks)" || diag "$(grep -m5 'not ok\|ERROR\|WARNING\|runtime error' <<<"$out")"
    done
done
out=$(cd "$ROOT" && tests/fuzz "${PQR_FUZZ_SECONDS:-15}" 2>&1)
while read -r line; do
    case $line in
        "ok "*) ok 0 "${line#ok [0-9]* - }" ;;
        "not ok "*) ok 1 "${line#not ok [0-9]* - }" ;;
    esac
done <<<"$out"
done_testing
