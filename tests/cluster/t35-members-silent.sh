# An application host that reaches the proxy but not the database nodes (a firewall that lets
# app -> proxy through only). The front door is the way: the first connect pays each silent member
# once and never loops (issue 17: with PQROUTE_STALE_MS shorter than the members' timeouts together,
# the host's memory let go of members while the connect was still walking them, and it cycled
# forever), the next ones cost what they cost without the shim, the other processes of the host do
# not pay again (the host cache), and non-blocking connects use that knowledge too. RW and RO.
. "$(dirname "$0")/lib-cluster.sh"
if ! command -v iptables >/dev/null || [ "$(id -u)" != 0 ]; then echo "1..0 # SKIP needs iptables and root"; exit 0; fi
# Only the application's packets are dropped: it runs as nobody, and the rule matches that owner,
# so Patroni's own connections, replication and the proxy's backend connections are untouched.
rules=()
for n in 11 12 13; do rules+=("OUTPUT -m owner --uid-owner nobody -d 127.0.0.$n -p tcp --dport 5432 -j DROP"); done
for r in "${rules[@]}"; do iptables -I $r; done
cache=$(mktemp -d)
trap 'for r in "${rules[@]}"; do iptables -D $r; done; rm -rf "$cache"' EXIT
chown nobody "$cache"
# connect_timeout 2 s (PQROUTE_CONNECT_TIMEOUT), and a host memory (PQROUTE_STALE_MS) shorter than
# three members' timeouts: the case that looped. Every client call has a ceiling of its own: a
# hang fails the test instead of the suite.
export PQROUTE_CACHE_DIR=$cache PQROUTE_CONNECT_TIMEOUT=2 PQROUTE_STALE_MS=3500 PQROUTE_LOG=info
app() { timeout 60 setpriv --reuid=nobody --regid=nogroup --clear-groups env LD_PRELOAD=$PRELOAD "$CLIENT" "$@" 2>&1; }
RW="host=$PROXY port=5432"
RO="host=$PROXY port=5433"
start_run=$(ms)

for role in RW RO; do
    rm -f "$cache"/*
    if [ $role = RW ]; then ci=$RW members=3; else ci=$RO members=2; fi
    out=$(app series 21 "$ci")
    first=$(awk '$1=="OK"||$1=="FAIL" {print $2; exit}' <<<"$out")
    rest=$(awk '$1=="OK"||$1=="FAIL" {n++; if (n > 1) s += $2} END {printf "%d", s}' <<<"$out")
    n=$(grep -c '^OK' <<<"$out")
    ok $([ "$n" = 21 ]; echo $?) "$role: 21 connects in one process all succeed ($n; the client's ceiling is 60 s)"
    ok $(grep '^OK' <<<"$out" | grep -qv "client=$PROXY"; [ $? = 1 ]; echo $?) "$role: every one went through the front door"
    # each decision line's list starts with the member waited for next: none twice, then the door
    firsts=$(grep -E '^libpqroute: info: (routed|retrying without)' <<<"$out" | sed -n 's/.*candidates \([0-9.:]*\)(.*/\1/p')
    nfirst=$(grep -c . <<<"$firsts")
    ok $([ "$nfirst" = $members ] && [ -z "$(sort <<<"$firsts" | uniq -d)" ]; echo $?) \
        "$role: each silent member waited for once, no cycling ($nfirst lists: $(echo $firsts))"
    like "$(grep -E 'out of members|candidates \(none\)' <<<"$out" | head -1)" 'front door 127.0.0.20' "$role: then the front door alone"
    # the bound the connect holds whatever its retries do: members x connect_timeout + the door
    ok $([ "${first%.*}" -lt $((members * 2000 + 3000)) ]; echo $?) \
        "$role: the first connect within members x connect_timeout + the door (${first} ms, $members members)"
    ok $([ "$rest" -lt 6000 ]; echo $?) "$role: the next 20 together cost what direct connects to the proxy cost (${rest} ms)"
    t0=$(ms)
    out=$(app connectdb "$ci")
    dt=$(( $(ms) - t0 ))
    ok $([[ $out =~ OK ]] && [ $dt -lt 1500 ]; echo $?) "$role: a new process on this host does not pay again (${dt} ms)"
    t0=$(ms)
    out=$(app start "$ci")
    dt=$(( $(ms) - t0 ))
    ok $([[ $out =~ OK.*client=$PROXY ]] && [ $dt -lt 1500 ]; echo $?) "$role: a non-blocking connect leaves the silent members out too (${dt} ms)"
    # A non-blocking connect on a fresh host pays too, once: each silent member is ended at its
    # connect_timeout (libpq's non-blocking connect has none of its own), the door is reached, and
    # what it found is the host's (issue 29). Its socket is the one the caller registered once.
    rm -f "$cache"/*
    out=$(app epoll "$ci")
    first=$(awk '$1=="OK"||$1=="FAIL" {print $2; exit}' <<<"$out")
    like "$out" "OK .*client=$PROXY .*maxcall=" "$role: a non-blocking connect (epoll, registered once) on a fresh host reaches the door"
    ok $([ -n "$first" ] && [ "${first%.*}" -ge $((members * 2000 - 500)) ] && [ "${first%.*}" -lt $((members * 2000 + 3000)) ]; echo $?) \
        "$role: ... after one connect_timeout per silent member, within members x connect_timeout + the door (${first} ms)"
    t0=$(ms)
    out=$(app epoll "$ci")
    dt=$(( $(ms) - t0 ))
    ok $([[ $out =~ OK.*client=$PROXY ]] && [ $dt -lt 1500 ]; echo $?) "$role: the next process does not pay again (${dt} ms)"
done

total=$(( $(ms) - start_run ))
ok $([ $total -lt 90000 ]; echo $?) "the whole run within 90 s (${total} ms)"
done_testing
