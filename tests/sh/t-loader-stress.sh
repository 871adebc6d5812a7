# The dynamic loader shared with threads the shim does not see (issue 20, rows 1-3): DEEPBIND loads
# (which the shim patches) beside loads and unloads of a library with many relocations, of distinct
# libpq-linked -z now libraries, a plugin whose constructor calls dlsym(), dlsym() loops and fork():
# no crash and no deadlock, with the shim preloaded and routing configured (its hooks active), as
# without it. Before the fix: a SIGSEGV in patch_table or in ld.so within seconds, or a deadlock.
. "$(dirname "$0")/../lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
N=12
"$ROOT/tests/tools/loader-stress-libs.sh" "$tmp" $N cc "$(pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)"
ok $? "the libraries to load are built"

export PQROUTE_PATRONI=http://127.0.0.1:1 PQROUTE_RW=127.0.0.1:1 PQROUTE_CACHE_DIR=$tmp/cache PQROUTE_LOG=error
for run in 1 2 3; do
    out=$(timeout -k 5 60 env LD_PRELOAD=$PRELOAD "$B/tests/pqr-loadstress" 5 "$tmp" $N 2>&1)
    rc=$?
    ok $([ $rc = 0 ] && [[ $out =~ ^done ]]; echo $?) "run $run, shim preloaded: no crash, no deadlock (exit $rc: ${out:0:160})"
done
out=$(timeout -k 5 60 "$B/tests/pqr-loadstress" 3 "$tmp" $N 2>&1)
ok $([ $? = 0 ]; echo $?) "the same without the shim (${out:0:160})"
# The same program built with TSan and with ASan+UBSan, the shim preloaded (their runtimes refuse
# RTLD_DEEPBIND: those loads are plain). A sanitizer's runtime calls dlsym() — ours — while it
# initialises: the shim must answer it before the runtime can run anything of its own.
if command -v clang >/dev/null; then
    for san in thread address,undefined; do
        exe=$tmp/loadstress-${san%%,*}
        if clang -fsanitize=$san -g -O1 -D_GNU_SOURCE -o "$exe" "$ROOT/tests/tools/dl/pqr-loadstress.c" -ldl -lpthread 2>/dev/null; then
            # The dynamic loader's own allocations (dlclose in two threads) look like races to TSan,
            # which does not see ld.so's lock: not ours, with or without the shim.
            printf 'called_from_lib:ld-linux-x86-64.so.2\ncalled_from_lib:ld-linux-aarch64.so.1\n' >"$tmp/tsan.supp"
            out=$(PQR_NO_DEEPBIND=1 ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0 \
                  TSAN_OPTIONS="halt_on_error=1 suppressions=$tmp/tsan.supp" \
                  timeout -k 5 120 env LD_PRELOAD=$PRELOAD "$exe" 4 "$tmp" $N 2>&1)
            rc=$?
            ok $([ $rc = 0 ] && [[ $out =~ done ]] && ! [[ $out =~ (ThreadSanitizer|AddressSanitizer|runtime error) ]]; echo $?) \
                "${san%%,*} build, shim preloaded: no report, no crash (exit $rc: $(grep -m1 -E 'done|WARNING|ERROR|SUMMARY' <<<"$out" | cut -c1-160))" ||
                diag "$(grep -E -A24 'WARNING|ERROR' <<<"$out" | head -40)"
        else
            diag "clang -fsanitize=$san: not available here"
        fi
    done
fi
done_testing
