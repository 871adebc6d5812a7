# Shared by the cluster tests: the loopback cluster's addresses and helpers.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
CL=$ROOT/cluster/pqr-cluster
eval "$("$CL" env)"
"$CL" wait 90 >/dev/null # every test starts from a healthy cluster
export PQROUTE_CACHE_DIR=${PQROUTE_CACHE_DIR:-$(mktemp -d /tmp/pqr-cache-XXXXXX)}
PROXY=127.0.0.20
RW="host=$PROXY port=5432 connect_timeout=3"
RO="host=$PROXY port=5433 connect_timeout=3"

# "direct" when the connection did not come through the proxy
path_of() { if [[ $1 =~ client=$PROXY ]]; then echo proxy; else echo direct; fi; }
server_of() { sed -n 's/.*server=\([0-9.]*\):.*/\1/p' <<<"$1" | head -1; }
recovery_of() { sed -n 's/.*recovery=\([tf]\).*/\1/p' <<<"$1" | head -1; }
leader_ip() { "$CL" ip "$("$CL" leader)"; }
wait_leader_writable() { # seconds
    local i
    for i in $(seq $((${1:-60} * 5))); do
        "$CLIENT" connectdb "host=$(leader_ip 2>/dev/null) connect_timeout=1" 2>/dev/null | grep -q 'recovery=f' && return 0
        sleep 0.2
    done
    return 1
}
# A Patroni view whose leader is an address where nothing listens (refused at once) and the real
# leader listed as a replica: a routed connect walks from a refusing member to the next.
ghost_view() { # file leader_ip
    cat >"$1" <<J
{"members": [
 {"name": "ghost", "role": "leader", "state": "running", "host": "127.0.0.19", "port": 5432, "timeline": 1},
 {"name": "real", "role": "replica", "state": "running", "host": "$2", "port": 5432, "timeline": 1, "lag": 0}]}
J
}
