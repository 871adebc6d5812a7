# A node that drops packets (no refusal, like a dead host on a real network): connects do not hang.
. "$(dirname "$0")/lib-cluster.sh"
if ! command -v iptables >/dev/null; then echo "1..0 # SKIP iptables not installed"; exit 0; fi
victim=$("$CL" members | awk '$2!="leader"{print $1; exit}')
vip=$("$CL" ip "$victim")
# The proxy's own health checks are not dropped: this test is about the client's path, and a proxy
# that marked the node down would still be recovering when the next test starts.
rule=(INPUT -d "$vip" ! -s $PROXY -p tcp -m multiport --dports 5432,8008 -j DROP)
iptables -I "${rule[@]}"
trap 'iptables -D "${rule[@]}"' EXIT
diag "dropping packets to $victim ($vip)"
cache=$(mktemp -d)
export PQROUTE_CACHE_DIR=$cache

# Fresh processes: each may try the silent replica once, bounded by connect_timeout (2 s).
worst=0 fails=0 victim_hits=0
for i in 1 2 3 4; do
    t0=$(ms)
    out=$(PQROUTE_CONNECT_TIMEOUT=2 LD_PRELOAD=$PRELOAD "$CLIENT" connectdb "host=$PROXY port=5433" 2>&1)
    dt=$(( $(ms) - t0 ))
    [ $dt -gt $worst ] && worst=$dt
    [[ $out =~ ^OK ]] || fails=$((fails + 1))
    [ "$(server_of "$out")" = "$vip" ] && victim_hits=$((victim_hits + 1))
done
ok $([ $fails = 0 ]; echo $?) "RO connects all succeed while $victim drops packets"
ok $([ $victim_hits = 0 ]; echo $?) "none landed on the silent node"
ok $([ $worst -lt 4500 ]; echo $?) "worst RO connect ${worst} ms (connect_timeout 2 s + the REST timeout)"

# One process: after the first timeout the silent node goes to the back of the list.
t0=$(ms)
out=$(LD_PRELOAD=$PRELOAD "$CLIENT" threads 1 8 "host=$PROXY port=5433" 2>&1)
dt=$(( $(ms) - t0 ))
like "$out" 'ok=8 fail=0' "8 RO connects in one process succeed"
ok $([ $dt -lt 4500 ]; echo $?) "and only the first can wait for the silent node (${dt} ms for 8)"

t0=$(ms)
out=$(shim connectdb "$RW")
ok $([ "$(recovery_of "$out")" = f ] && [ $(( $(ms) - t0 )) -lt 2000 ]; echo $?) "RW unaffected ($(( $(ms) - t0 )) ms)"
rm -rf "$cache"
done_testing
