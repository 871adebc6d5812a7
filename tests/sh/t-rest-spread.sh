# Issue 13: no poll reaches every Patroni node in the same instant, and with a DCS configured the
# REST API is asked one node at a time (the fallback), never all of them.
. "$(dirname "$0")/../lib.sh"
tmp=$(mktemp -d)
trap 'stop_servers; rm -rf "$tmp"' EXIT
FX=$ROOT/tests/fixtures/patroni-3.0.2/cluster-healthy.json
start_fake() { # addr mode
    start_server "$tmp/fake-$1.out" env FAKE_LOG="$tmp/requests" python3 "$ROOT/tests/tools/fake-patroni.py" "$1" "$2" "$FX"
}
start_fake 127.0.0.35:18008 ok
start_fake 127.0.0.36:18008 ok
start_fake 127.0.0.37:18008 500
URLS=http://127.0.0.35:18008,http://127.0.0.36:18008,http://127.0.0.37:18008
export PQROUTE_RW=127.0.0.1:1 PQROUTE_REST_TIMEOUT_MS=500 PQROUTE_LOG=error
unset PQROUTE_ETCD PQROUTE_CONSUL PQROUTE_CONFIG

# Without a DCS: every node is asked, the starts 10 ms apart.
spread_ok=0
for i in 1 2 3 4 5; do
    : >"$tmp/requests"
    PQROUTE_PATRONI=$URLS PQROUTE_CACHE_DIR=$tmp/c$i "$B/pqroute" status >/dev/null 2>&1
    n=$(wc -l <"$tmp/requests")
    gap=$(sort -n "$tmp/requests" | awk 'NR>1 {d=($1-p)*1000; if (m==""||d<m) m=d} {p=$1} END {printf "%d", m}')
    [ "$n" = 3 ] && [ "$gap" -ge 4 ] && spread_ok=$((spread_ok + 1))
    diag "poll $i: $n requests, closest two ${gap} ms apart"
done
ok $([ $spread_ok = 5 ]; echo $?) "REST polling: each poll asks all three nodes, no two within 4 ms (starts 10 ms apart) ($spread_ok of 5)"

# Which node comes first differs between processes.
: >"$tmp/requests"
for i in $(seq 12); do
    PQROUTE_PATRONI=$URLS PQROUTE_CACHE_DIR=$tmp/f$i "$B/pqroute" status >/dev/null 2>&1
    printf -- '--\n' >>"$tmp/requests"
done
firsts=$(awk 'BEGIN {n = 1} /^--/ {n = 1; next} n {print $2; n = 0}' "$tmp/requests" | sort -u | wc -l)
ok $([ "$firsts" -ge 2 ]; echo $?) "the node asked first changes between processes ($firsts different in 12)"

# With a DCS that does not answer: one node at a time, stopping at the first good answer.
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
