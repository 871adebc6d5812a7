# Issue 22: a small fleet of hosts (bench/pqr-fleet: 50 routers in one process, each with its own
# cache directory, each run by the agent's own code) against the loopback cluster's real etcd: what
# each host asks of etcd in the steady state, and that every host follows a switchover.
. "$(dirname "$0")/lib-cluster.sh"
FLEET=$B/bench/pqr-fleet
HOSTS=50
SECS=25
ETCD=http://127.0.0.10:2379
[ -x "$FLEET" ] || { echo "1..0 # SKIP $FLEET not built"; exit 0; }
export PQROUTE_ETCD=$ETCD PQROUTE_SCOPE=pqroute # the fleet's and `pqroute stats`' configuration
tmp=$(mktemp -d -p "$([ -d /dev/shm ] && echo /dev/shm || echo /tmp)") # tmpfs, as an agent's directory is
fleet_pid=
cleanup() { [ -n "$fleet_pid" ] && kill $fleet_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
# etcd's own count of the unary calls it started (reads, writes, leases: Patroni's and ours)
unary() { curl -fsS "$ETCD/metrics" | awk '/^grpc_server_started_total\{/ && /grpc_type="unary"/ {n += $2} END {printf "%d", n}'; }
watchers() { curl -fsS "$ETCD/metrics" | awk '$1 == "etcd_debugging_mvcc_watcher_total" {print int($2)}'; }
# the sum over every host of the named counters (`pqroute stats` in each host's directory)
counted() {
    local d n=0 v
    for d in "$tmp"/fleet/h*; do
        v=$(PQROUTE_CACHE_DIR=$d "$B/pqroute" stats 2>/dev/null |
            awk -v want=" $* " 'index(want, " " $1 " ") {n += $2} END {print n + 0}')
        n=$((n + v))
    done
    echo $n
}
# the fleet's own requests: full reads, the reads proving a stream, REST asks
asked() { counted dcs_reads watch_checks rest_fallbacks; }
# what the streams said: events, or etcd's progress notifications on a quiet one
heard() { counted watch_events watch_progress; }

u0=$(unary)
sleep 10
idle=$(( $(unary) - u0 )) # Patroni's own, in 10 s
w0=$(watchers)
(ulimit -s 1024; PQROUTE_LOG=error exec "$FLEET" $HOSTS 120 "$tmp/fleet") \
    >"$tmp/fleet.out" 2>"$tmp/fleet.err" &
fleet_pid=$!
check "$HOSTS hosts watch etcd" wait_for 60 sh -c "[ \$(( \$(curl -fsS $ETCD/metrics | awk '\$1 == \"etcd_debugging_mvcc_watcher_total\" {print int(\$2)}') - $w0 )) -ge $HOSTS ]"
check "every host's cache names the leader" wait_for 30 sh -c "[ \$(grep -c '^LEADER ' '$tmp/fleet.out') -ge $HOSTS ]"
sleep 3
a=$(asked) p0=$(heard) u1=$(unary)
sleep $SECS
b=$(asked) p1=$(heard) u2=$(unary)
rate=$(awk -v d=$((b - a)) -v n=$HOSTS -v s=$SECS 'BEGIN {printf "%.4f", d / n / s}')
ok $(awk -v r="$rate" 'BEGIN {exit !(r <= 0.05)}'; echo $?) \
    "steady state: $((b - a)) etcd requests from $HOSTS hosts in $SECS s ($rate per host per second; bound 0.05)"
extra=$(awk -v f=$((u2 - u1)) -v i="$idle" -v s=$SECS 'BEGIN {printf "%.1f", f / s - i / 10}')
ok $(awk -v x="$extra" -v n=$HOSTS 'BEGIN {exit !(x <= 0.05 * n + 1)}'; echo $?) \
    "and as etcd counts them: $extra unary calls/s above Patroni's own ($((idle / 10))/s; bound $HOSTS x 0.05 + 1)"
# (Patroni writes a key each loop_wait here; on a quiet cluster etcd's progress notifications,
# every 5 s in pqr-cluster, stand in: test_etcd covers both, and the reads of a silent stream)
ok $([ $((p1 - p0)) -ge $((HOSTS * SECS / 6)) ]; echo $?) "every stream kept saying something: events or progress notifications ($((p1 - p0)) in $SECS s)"

old=$("$CL" leader)
t0=$(date +%s%3N)
timeout 60 "$CL" switchover >/dev/null 2>&1
"$CL" wait 60 >/dev/null
new=$("$CL" leader)
ok $([ "$new" != "$old" ]; echo $?) "switchover: leader moved from $old to $new"
followed() { [ "$(awk -v n="$new" -v t="$t0" '$1 == "LEADER" && $3 == n && $4 >= t {h[$2]} END {print length(h)}' "$tmp/fleet.out")" -ge $HOSTS ]; }
check "every host's cache names the new leader" wait_for 30 followed
diag "from the switchover's start to the last host: $(awk -v n="$new" -v t="$t0" '$1 == "LEADER" && $3 == n && $4 >= t && !($2 in h) {h[$2] = $4} END {m = 0; for (k in h) if (h[k] > m) m = h[k]; print m - t}' "$tmp/fleet.out") ms"
kill $fleet_pid 2>/dev/null
wait $fleet_pid 2>/dev/null
fleet_pid=
ok $([ ! -s "$tmp/fleet.err" ] || ! grep -v 'hosts started' "$tmp/fleet.err" | grep -q .; echo $?) "the fleet said nothing wrong"
grep -v 'hosts started' "$tmp/fleet.err" | head -3 | sed 's/^/# /'
done_testing
