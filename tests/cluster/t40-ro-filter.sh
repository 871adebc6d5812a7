# RO never picks a replica tagged noloadbalance, or one lagging more than PQROUTE_MAX_LAG.
. "$(dirname "$0")/lib-cluster.sh"
"$CL" wait-proxy 30 >/dev/null
read -r r1 r2 < <("$CL" members | awk '$2!="leader"{printf "%s ", $1}')
ip1=$("$CL" ip "$r1")
ip2=$("$CL" ip "$r2")

# Until every node's /cluster agrees (a grep succeeds or fails on all of them). Each batch of
# connects below starts with an empty cache directory, so no process uses a view from before.
views_settle() { # present|absent pattern
    local i n ok_all
    for i in $(seq 75); do
        ok_all=1
        for n in 11 12 13; do
            if curl -s http://127.0.0.$n:8008/cluster | grep -q "$2"; then [ "$1" = present ] || ok_all=0
            else [ "$1" = absent ] || ok_all=0; fi
        done
        [ $ok_all = 1 ] && return 0
        sleep 0.2
    done
    return 1
}

ro_servers() { # n: distinct servers RO connections landed on (n fresh processes, a fresh cache)
    local i out c
    c=$(mktemp -d)
    for i in $(seq "$1"); do out=$(PQROUTE_CACHE_DIR=$c shim connectdb "$RO"); server_of "$out"; done | sort | uniq -c | tr '\n' ' '
    rm -rf "$c"
}

"$CL" tag "$r2" noloadbalance true
trap '"$CL" untag "$r2"' EXIT
check "every node reports the noloadbalance tag" views_settle present noloadbalance
got=$(ro_servers 8)
like "$got" "^ *8 $ip1 *$" "noloadbalance on $r2: all 8 RO connections on $r1 ($got)" ||
    diag "$("$B/pqroute" status 2>&1; PQROUTE_LOG=info shim connectdb "$RO")"
"$CL" untag "$r2"
trap - EXIT
check "every node reports the tag gone" views_settle absent noloadbalance
# each process picks one of the two at random: 24 of them all on one has a chance of 1 in 8 million
got=$(ro_servers 24)
like "$got" "$ip1.*$ip2|$ip2.*$ip1" "untagged: RO spreads over both replicas again ($got)"

# Lag: freeze one replica's WAL receiver, write 4 MB on the leader.
pm=$("$CL" postmaster-pid "$r2")
wr=$(pgrep -P "$pm" -f 'walreceiver' | head -1)
if [ -z "$wr" ]; then ok 1 "found $r2's walreceiver"; done_testing; exit; fi
kill -STOP "$wr"
trap 'kill -CONT '"$wr" EXIT
# A write, then a WAL segment switch: the leader's position jumps to the next 16 MB boundary.
"$CL" psql "$("$CL" leader)" -qc "insert into writes(src) values ('lag test')"
"$CL" sql "$("$CL" leader)" "select pg_switch_wal()" >/dev/null
# until every node's /cluster shows the lag (a process may take any node's view)
lag_on() { curl -s "http://$1:8008/cluster" | python3 -c "import json,sys
print(next((m.get('lag',0) for m in json.load(sys.stdin)['members'] if m['name']=='$r2'),0))"; }
lagging_everywhere() {
    local n l
    for n in 11 12 13; do
        l=$(lag_on 127.0.0.$n)
        [ "$l" != unknown ] && [ "$l" -gt 1048576 ] 2>/dev/null || return 1
    done
}
check "every node reports $r2 lagging more than 1 MiB" wait_for 30 lagging_everywhere
lag=$(lag_on "$ip1")
diag "$r2 lag $lag bytes: $(curl -s http://$ip1:8008/cluster | grep -o '{[^{]*"name": "'$r2'"[^}]*}')"
got=$(ro_servers 6)
like "$got" "^ *6 $ip1 *$" "$r2 lagging $lag bytes > 1 MiB: RO avoids it ($got)"
got=$(PQROUTE_MAX_LAG=1000000000 ro_servers 24)
like "$got" "$ip2" "with PQROUTE_MAX_LAG=1e9 the lagging replica is eligible again ($got)"
kill -CONT "$wr"
trap - EXIT
"$CL" wait 60 >/dev/null
done_testing
