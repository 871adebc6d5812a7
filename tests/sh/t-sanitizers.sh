# The unit tests (config, topology, policy, rewrite, concurrency and fork) built with ASan+UBSan
# and with TSan; the fuzz targets for a short bounded run.
. "$(dirname "$0")/../lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The two builds' suites side by side (most of their time is the suites' own waiting, and each
# suite runs one test at a time): a line per test, "status|description|diagnosis", in order.
run_kind() { # kind
    local dir=$ROOT/build-$1/tests t out rc st
    for t in "$dir"/test_*; do
        out=$(cd "$ROOT" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
              UBSAN_OPTIONS=print_stacktrace=1 timeout 300 "$t" 2>&1)
        rc=$?
        st=$([ $rc = 0 ] && ! grep -q 'not ok\|ERROR: \|WARNING: ThreadSanitizer\|runtime error' <<<"$out"; echo $?)
        printf '%s|%s|%s\n' "$st" "$1: $(basename "$t") ($(grep -c '^ok' <<<"$out") checks)" \
            "$([ "$st" = 0 ] || grep -m5 'not ok\|ERROR\|WARNING\|runtime error' <<<"$out" | tr '\n' ' ')"
    done
}
for kind in asan tsan; do
    [ -d "$ROOT/build-$kind/tests" ] && run_kind $kind >"$tmp/$kind" &
done
wait
for kind in asan tsan; do
    if [ ! -d "$ROOT/build-$kind/tests" ]; then ok 0 "$kind # SKIP not built (make sanitizers)"; continue; fi
    # a suite that ended early (its runner killed) shows as a test missing
    ok $([ "$(grep -c . "$tmp/$kind")" = "$(ls "$ROOT/build-$kind/tests"/test_* | wc -l)" ]; echo $?) "$kind: every suite ran"
    while IFS='|' read -r st desc why; do
        ok "$st" "$desc" || diag "$why"
    done <"$tmp/$kind"
done
out=$(cd "$ROOT" && tests/fuzz "${PQR_FUZZ_SECONDS:-15}" 2>&1)
while read -r line; do
    case $line in
        "ok "*) ok 0 "${line#ok [0-9]* - }" ;;
        "not ok "*) ok 1 "${line#not ok [0-9]* - }" ;;
    esac
done <<<"$out"
done_testing
