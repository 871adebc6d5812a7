# Issue 12's worst case: an application host that reaches the proxy but not the database nodes (a
# firewall that lets app -> proxy through only). The front door is the way: the first connect pays
# the silent members once, the next ones cost what they cost without the shim, the other processes
# of the host do not pay again (the host cache), and non-blocking connects use that knowledge too.
. "$(dirname "$0")/lib-cluster.sh"
if ! command -v iptables >/dev/null || [ "$(id -u)" != 0 ]; then echo "1..0 # SKIP needs iptables and root"; exit 0; fi
# Only the application's packets are dropped: it runs as nobody, and the rule matches that owner,
# so Patroni's own connections, replication and the proxy's backend connections are untouched.
rules=()
for n in 11 12 13; do rules+=("OUTPUT -m owner --uid-owner nobody -d 127.0.0.$n -p tcp --dport 5432 -j DROP"); done
for r in "${rules[@]}"; do iptables -I $r; done
trap 'for r in "${rules[@]}"; do iptables -D $r; done' EXIT
cache=$(mktemp -d)
chown nobody "$cache"
export PQROUTE_CACHE_DIR=$cache PQROUTE_CONNECT_TIMEOUT=2
app() { setpriv --reuid=nobody --regid=nogroup --clear-groups env LD_PRELOAD=$PRELOAD "$CLIENT" "$@" 2>&1; }
L=$(leader_ip)

RW="host=$PROXY port=5432" # connect_timeout: PQROUTE_CONNECT_TIMEOUT (2 s)
out=$(app series 21 "$RW")
first=$(awk '$1=="OK"||$1=="FAIL" {print $2; exit}' <<<"$out")
rest=$(awk '$1=="OK"||$1=="FAIL" {n++; if (n > 1) s += $2} END {printf "%d", s}' <<<"$out")
ok $(! grep -q '^FAIL' <<<"$out"; echo $?) "21 RW connects in one process all succeed (through the proxy)"
ok $(grep '^OK' <<<"$out" | grep -qv "client=$PROXY"; [ $? = 1 ]; echo $?) "every one went through the front door"
ok $([ "${first%.*}" -lt 8000 ]; echo $?) "the first paid each silent member once (${first} ms: 3 x connect_timeout 2 s, then the door)"
ok $([ "$rest" -lt 2000 ]; echo $?) "the next 20 together cost what direct connects to the proxy cost (${rest} ms)"
t0=$(ms)
out=$(app connectdb "$RW")
dt=$(( $(ms) - t0 ))
ok $([[ $out =~ ^OK ]] && [ $dt -lt 1500 ]; echo $?) "a new process on this host does not pay again (${dt} ms)"
t0=$(ms)
out=$(app start "$RW")
dt=$(( $(ms) - t0 ))
ok $([[ $out =~ ^OK ]] && [ $dt -lt 1500 ]; echo $?) "a non-blocking connect leaves the silent members out too (${dt} ms: $out)"
rm -rf "$cache"
done_testing
