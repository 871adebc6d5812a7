# The shim and the engine themselves built with ASan+UBSan (make sanitizers), preloaded after the
# ASan runtime into an ASan-built client, against the real cluster: blocking and non-blocking
# routed connects (RW, RO), a first member that refuses (the non-blocking socket handover),
# threads, a fork. Any report of AddressSanitizer, LeakSanitizer or UBSan fails the test.
. "$(dirname "$0")/lib-cluster.sh"
A=$ROOT/build-asan
RT=$(gcc -print-file-name=libasan.so)
if [ ! -e "$A/libpqroute-preload.so" ] || [ ! -e "$RT" ]; then echo "1..0 # SKIP no ASan build (make sanitizers)"; exit 0; fi
tmp=$(mktemp -d)
trap 'stop_servers; rm -rf "$tmp"' EXIT
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
export PQROUTE_CACHE_DIR=$tmp/cache
asan() { LD_PRELOAD=$RT:$A/libpqroute-preload.so timeout 120 "$A/tests/pqr-client" "$@" 2>&1; }
clean() { ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' <<<"$1"; }
for door in 5432 5433; do
    for mode in connectdb epoll; do
        out=$(asan $mode "host=$PROXY port=$door connect_timeout=3")
        ok $([[ $out =~ OK.*client=127.0.0.1 ]] && clean "$out"; echo $?) "ASan shim: $mode, door $door, routed, no report" ||
            diag "$(grep -m6 -E 'ERROR|runtime error|#[0-9] |FAIL' <<<"$out")"
    done
done
out=$(asan threads 4 10 "$RW")
ok $([[ $out =~ threads=4\ ok=40 ]] && clean "$out"; echo $?) "ASan shim: 4 threads x 10 routed connects, no report" ||
    diag "$(grep -m6 -E 'ERROR|runtime error|#[0-9] |threads=' <<<"$out")"
out=$(asan prefork 2 3 "$RW")
ok $(clean "$out" && ! grep -q FAIL <<<"$out"; echo $?) "ASan shim: connects in forked children, no report" ||
    diag "$(grep -m6 -E 'ERROR|runtime error|#[0-9] |FAIL' <<<"$out")"
leader=$(leader_ip)
ghost_view "$tmp/ghost.json" "$leader"
check "a stand-in Patroni serves a view whose first member refuses" start_server "$tmp/ghost.out" python3 "$ROOT/tests/tools/fake-patroni.py" 127.0.0.38:18008 ok "$tmp/ghost.json"
out=$(env -u PQROUTE_ETCD PQROUTE_PATRONI=http://127.0.0.38:18008 PQROUTE_CACHE_DIR="$tmp/ghost-cache" LD_PRELOAD=$RT:$A/libpqroute-preload.so \
    timeout 120 "$A/tests/pqr-client" epoll "$RW" 2>&1)
ok $([[ $out =~ OK.*server=$leader: ]] && clean "$out"; echo $?) "ASan shim: non-blocking, first member refuses, socket handed over, no report" ||
    diag "$(grep -m6 -E 'ERROR|runtime error|#[0-9] |FAIL' <<<"$out")"
done_testing
