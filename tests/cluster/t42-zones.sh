# Zone-aware reads: the cluster's nodes carry the Patroni tag zone (node1 a, node2 b, node3 c).
# PQROUTE_ZONE=b keeps reads on b's replica while it is healthy, moves them to another replica
# when it stops and back when it returns; a list b,a prefers a when b's node leads;
# PQROUTE_RO_FALLBACK=leader sends reads to the leader directly when no replica is left.
. "$(dirname "$0")/lib-cluster.sh"
"$CL" wait-proxy 30 >/dev/null
ip1=$("$CL" ip node1)
ip2=$("$CL" ip node2)
ip3=$("$CL" ip node3)

restore() {
    local n
    for n in node1 node2 node3; do "$CL" restart-node $n; done
    "$CL" wait 60 >/dev/null
}
trap restore EXIT

# n connects from one fresh process (its own cache directory: no view from before), with the
# extra environment given; prints "fail=F direct=D proxy=P" and "<count> <server>" for each server.
reads() { # n [VAR=value ...]
    local n=$1 c
    shift
    c=$(mktemp -d)
    env PQROUTE_CACHE_DIR="$c" "$@" LD_PRELOAD="$PRELOAD" "$CLIENT" series "$n" "$RO" 2>&1 |
        awk -v proxy="$PROXY" '/^FAIL/ {f++} /^OK/ {
                match($0, /server=[0-9.]+/); s[substr($0, RSTART + 7, RLENGTH - 7)]++
                if ($0 ~ "client=" proxy " ") p++; else d++ }
            END { printf "fail=%d direct=%d proxy=%d", f, d, p; for (k in s) printf " %d@%s", s[k], k; print "" }'
    rm -rf "$c"
}
# Every one of n reads landed on ip, directly.
all_on() { # n ip [VAR=value ...]
    local n=$1 ip=$2 got
    shift 2
    got=$(reads "$n" "$@")
    [ "$got" = "fail=0 direct=$n proxy=0 $n@$ip" ]
}

# b's node must be a replica for the first part.
if [ "$("$CL" leader)" = node2 ]; then
    "$CL" switchover node1 >/dev/null 2>&1
    "$CL" wait 60 >/dev/null
fi
check "Patroni reports zone tags a, b, c" wait_for 20 bash -c \
    'curl -s http://127.0.0.11:8008/cluster | grep -o "\"zone\": \"[abc]\"" | sort -u | wc -l | grep -qx 3'
leader=$("$CL" leader)
other=$([ "$leader" = node1 ] && echo node3 || echo node1) # the replica that is not b's
ipo=$("$CL" ip "$other")

# 1. Zone b: 200 reads from 4 processes, every one on b's replica (each process rotates its calls
# over the replicas, and without a zone half of them land elsewhere: checked too).
got=""
for i in 1 2 3 4; do got+="$(reads 50 PQROUTE_ZONE=b) "; done
like "$got" "^(fail=0 direct=50 proxy=0 50@$ip2 ){4}$" "PQROUTE_ZONE=b: 200 of 200 reads on node2 (b), directly ($got)"
got=$(reads 20)
# (a connect that retries takes one more turn of the rotation: not exactly 10 and 10)
like "$got" " ([5-9]|1[0-5])@$ip2" "no PQROUTE_ZONE: reads still spread over both replicas ($got)"
like "$got" " ([5-9]|1[0-5])@$ipo" "... both of them"
out=$(PQROUTE_ZONE=b LD_PRELOAD=$PRELOAD PQROUTE_LOG=info "$CLIENT" connectdb "$RO" 2>&1)
like "$out" "zone b \\(tag zone\\).*$ip2:5432\\(node2 zone b\\),$ipo:5432\\($other zone [ac]\\)" \
    "the decision line names the zones, b's replica first"
out=$(PQROUTE_ZONE=b "$B/pqroute" status 2>&1)
like "$out" "reads prefer zone b" "pqroute status: the zone list"
like "$out" "node2 +replica .* b +same zone b: first" "pqroute status: node2's zone and why it comes first"
like "$out" "$other +replica .* [ac] +another zone: after the zones b" "pqroute status: the other replica's"

# 2. b's replica stops: a reader running through it is never refused once Patroni's view has
# changed, and reads land on the other replica; b returns: reads return to it.
log=$(mktemp)
PQROUTE_ZONE=b PQROUTE_REFRESH_MS=200 LD_PRELOAD=$PRELOAD "$CLIENT" reader 9 20 "$RO" >"$log" 2>&1 &
rpid=$!
sleep 1
t_stop=$(date +%s%3N)
"$CL" stop-node node2
node2_gone() { ! curl -s "http://$ipo:8008/cluster" | grep -q '"name": "node2"[^}]*"state": "\(streaming\|running\)"'; }
wait_for 20 node2_gone
t_view=$(date +%s%3N)
wait $rpid
# the reader's lines only (a PQROUTE_LOG set by whoever runs the test adds others)
grep -E '^[0-9]+ (OK|FAIL)' "$log" >"$log.r"
mv "$log.r" "$log"
after=$(awk -v t="$t_view" '$1 >= t' "$log")
n_after=$(grep -c . <<<"$after")
ok $([ "$n_after" -gt 20 ] && ! grep -q FAIL <<<"$after"; echo $?) \
    "node2 stopped: 0 of $n_after reads failed once the view changed ($(grep -c FAIL "$log") before, of $(grep -c . "$log"); view changed $((t_view - t_stop)) ms after the stop)"
ok $(awk -v t="$t_view" '$1 >= t + 500' "$log" | grep -v -q "server=$ipo:"; [ $? = 1 ]; echo $?) \
    "... and from 0.5 s after it, every read on $other ($(awk -v t="$t_view" '$1 >= t + 500' "$log" | grep -c "server=$ipo:"))"
grep FAIL "$log" | head -3 | while read -r l; do diag "failed before the view changed (at $((${l%% *} - t_stop)) ms): ${l#* }"; done
first=$(awk -v t="$t_stop" '$1 >= t && /server=/ && $0 ~ "server='"$ipo"':" {print $1 - t; exit}' "$log")
diag "first read on $other ${first:-?} ms after node2's stop began"
rm -f "$log"
"$CL" restart-node node2
check "node2 back: reads return to it (20 of 20)" wait_for 60 all_on 20 "$ip2" PQROUTE_ZONE=b

# 3. b's node leads: the list b,a sends reads to a's replica (node1), never c's.
"$CL" switchover node2 >/dev/null 2>&1
"$CL" wait 60 >/dev/null
check "node2 (b) is the leader" bash -c '[ "$("$0" leader)" = node2 ]' "$CL"
check "PQROUTE_ZONE=b,a with b's node leading: 40 of 40 reads on node1 (a)" \
    wait_for 30 all_on 40 "$ip1" PQROUTE_ZONE=b,a
got=$(reads 20 PQROUTE_ZONE=b)
like "$got" " ([5-9]|1[0-5])@$ip1.* ([5-9]|1[0-5])@$ip3| ([5-9]|1[0-5])@$ip3.* ([5-9]|1[0-5])@$ip1" "PQROUTE_ZONE=b alone: both replicas, as other zones ($got)"

# 4. No replica left: RO_FALLBACK=leader reads from the leader directly; by default the front door.
"$CL" stop-node node1 &
"$CL" stop-node node3
wait
no_replica() { ! curl -s "http://$ip2:8008/cluster" | grep -q '"role": "replica"[^}]*"state": "\(streaming\|running\)"'; }
check "the view has no running replica" wait_for 30 no_replica
got=$(reads 10 PQROUTE_ZONE=b,a PQROUTE_RO_FALLBACK=leader)
like "$got" "^fail=0 direct=10 proxy=0 10@$ip2$" "RO_FALLBACK=leader: 10 of 10 reads on the leader, not through the proxy ($got)"
out=$(PQROUTE_RO_FALLBACK=leader LD_PRELOAD=$PRELOAD PQROUTE_LOG=info "$CLIENT" connectdb "$RO" 2>&1)
like "$out" "node2 leader: no replica eligible, RO_FALLBACK=leader" "the decision line says why the leader"
got=$(reads 2)
unlike "$got" "direct=[1-9]" "default (door): no read goes to the leader directly ($got)"
out=$(PQROUTE_RO_FALLBACK=leader LD_PRELOAD=$PRELOAD "$CLIENT" connectdb "host=$PROXY port=5433 target_session_attrs=standby connect_timeout=2" 2>&1)
unlike "$out" "server=$ip2:" "an application asking for target_session_attrs=standby is not given the leader"
"$CL" restart-node node1
check "a replica returns: reads move back to it (10 of 10 on node1)" \
    wait_for 60 all_on 10 "$ip1" PQROUTE_ZONE=b,a PQROUTE_RO_FALLBACK=leader
trap - EXIT
restore
done_testing
