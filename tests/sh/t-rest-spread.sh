# Issue 13: no poll reaches every Patroni node in the same instant, and with a DCS configured the
# REST API is asked one node at a time (the fallback), never all of them.
. "$(dirname "$0")/../lib.sh"
tmp=$(mktemp -d)
trap 'stop_servers; rm -rf "$tmp"' EXIT
FX=$ROOT/tests/fixtures/patroni-3.0.2/cluster-healthy.json
start_fake() { # addr mode
    start_server "$tmp/fake-$1.out" env FAKE_LOG="$tmp/requests" python3 "$ROOT/tests/tools/fake-patroni.py" "$1" "$2" "$FX"
}
check "fake Patroni 127.0.0.35:18008 (ok) started" start_fake 127.0.0.35:18008 ok
check "fake Patroni 127.0.0.36:18008 (ok) started" start_fake 127.0.0.36:18008 ok
check "fake Patroni 127.0.0.37:18008 (500) started" start_fake 127.0.0.37:18008 500
URLS=http://127.0.0.35:18008,http://127.0.0.36:18008,http://127.0.0.37:18008
export PQROUTE_RW=127.0.0.1:1 PQROUTE_REST_TIMEOUT_MS=500 PQROUTE_LOG=error
unset PQROUTE_ETCD PQROUTE_CONSUL PQROUTE_CONFIG

# Without a DCS: every node is asked, each start 10 ms after the previous one's connect(2). When
# the client calls connect(2) is what it controls, and strace's clock shows it without a margin: a
# traced process stays stopped at the call until strace has stamped it, so the next start's 10 ms
# cannot begin earlier. (Where the requests arrive at a server that is itself waiting for a core
# says nothing of it.)
spread_ok=0
for i in 1 2 3 4 5; do
    : >"$tmp/requests"
    PQROUTE_PATRONI=$URLS PQROUTE_CACHE_DIR=$tmp/c$i strace -f -ttt -e trace=connect -o "$tmp/strace$i" \
        "$B/pqroute" status >/dev/null 2>&1
    conns=$(grep -E 'connect\(.*127\.0\.0\.3[567]' "$tmp/strace$i")
    n=$(grep -oE '127\.0\.0\.3[567]' <<<"$conns" | sort -u | wc -l)
    gap=$(awk 'NR > 1 {d = ($2 - p) * 1000; if (m == "" || d < m) m = d} {p = $2} END {printf "%.1f", NR == 3 ? m : -1}' <<<"$conns")
    # 10 ms on a millisecond clock: at least 9 ms
    [ "$n" = 3 ] && awk -v g="$gap" 'BEGIN {exit !(g >= 9)}' && spread_ok=$((spread_ok + 1))
    diag "poll $i: $n nodes connected to, closest two connects ${gap} ms apart"
done
ok $([ $spread_ok = 5 ]; echo $?) "REST polling: each poll connects to all three nodes, each connect 10 ms after the previous ($spread_ok of 5)"

# Which node comes first differs between processes.
: >"$tmp/requests"
for i in $(seq 12); do
    PQROUTE_PATRONI=$URLS PQROUTE_CACHE_DIR=$tmp/f$i "$B/pqroute" status >/dev/null 2>&1
    printf -- '--\n' >>"$tmp/requests"
done
firsts=$(awk 'BEGIN {n = 1} /^--/ {n = 1; next} n {print $2; n = 0}' "$tmp/requests" | sort -u | wc -l)
ok $([ "$firsts" -ge 2 ]; echo $?) "the node asked first changes between processes ($firsts different in 12)"

# With a DCS that does not answer: one node at a time, stopping at the first good answer. A REST
# timeout of 3 s here: a fake slowed down by a loaded machine must not count as a node that failed
# (the next one would be asked, and "one at a time" could not be told from "all of them").
export PQROUTE_REST_TIMEOUT_MS=3000
: >"$tmp/requests"
out=$(PQROUTE_ETCD=http://127.0.0.1:1 PQROUTE_SCOPE=x PQROUTE_PATRONI=$URLS PQROUTE_CACHE_DIR=$tmp/d1 PQROUTE_LOG=warn "$B/pqroute" status 2>&1)
n=$(wc -l <"$tmp/requests")
like "$out" 'the DCS does not answer \(etcd http://127.0.0.1:1: .*\); asking Patroni.s REST API meanwhile' "etcd refused: one warning, REST as the fallback"
like "$out" 'view from http://127.0.0.3[567]:18008' "the fallback's view is used"
ok $([ "$n" -ge 1 ] && [ "$n" -le 2 ]; echo $?) "one node at a time: $n request(s) (two only when the failing node came first)"
total=0
for i in $(seq 6); do
    : >"$tmp/requests"
    PQROUTE_ETCD=http://127.0.0.1:1 PQROUTE_SCOPE=x PQROUTE_PATRONI=$URLS PQROUTE_CACHE_DIR=$tmp/e$i "$B/pqroute" status >/dev/null 2>&1
    total=$((total + $(wc -l <"$tmp/requests")))
done
ok $([ $total -le 12 ]; echo $?) "six fallbacks asked $total times in all (polling every node: 18)"
done_testing
