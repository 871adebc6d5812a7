# Never worse off than without the shim: REST down -> through the proxy; proxy down -> direct.
. "$(dirname "$0")/lib-cluster.sh"
L=$(leader_ip)

# Patroni's REST API unreachable on every node (a fresh process with no usable shared cache).
dead=http://127.0.0.11:18999,http://127.0.0.12:18999,http://127.0.0.13:18999
cache=$(mktemp -d)
out=$(PQROUTE_CACHE_DIR=$cache PQROUTE_PATRONI=$dead PQROUTE_LOG=info shim connectdb "$RW")
ok $([ "$(path_of "$out")" = proxy ] && [ "$(recovery_of "$out")" = f ]; echo $?) "REST down: RW still connects, through the proxy, to the leader" || diag "$out"
like "$out" 'no usable answer from Patroni' "REST down: one warning says why"
out=$(PQROUTE_CACHE_DIR=$cache PQROUTE_PATRONI=$dead shim connectdb "$RO")
ok $([ "$(path_of "$out")" = proxy ] && grep -q '^OK' <<<"$out"; echo $?) "REST down: RO still connects through the proxy" || diag "$out"
t0=$(ms)
# a REST budget of 10 s: waiting for it would show, whatever the machine's load
PQROUTE_CACHE_DIR=$cache PQROUTE_PATRONI=$dead PQROUTE_REST_TIMEOUT_MS=10000 shim connectdb "$RW" >/dev/null
dt=$(( $(ms) - t0 ))
ok $([ $dt -lt 3000 ]; echo $?) "REST refusing: a fresh process does not wait for it (${dt} ms, REST timeout 10 s)"
rm -rf "$cache"

# The proxy stopped, REST up: connections go directly.
"$CL" stop-proxy
trap '"$CL" start-proxy' EXIT
out=$(shim connectdb "$RW")
ok $([ "$(path_of "$out")" = direct ] && [ "$(server_of "$out")" = "$L" ]; echo $?) "proxy down: RW direct to the leader"
out=$(shim connectdb "$RO")
ok $([ "$(path_of "$out")" = direct ] && [ "$(recovery_of "$out")" = t ]; echo $?) "proxy down: RO direct to a replica"
out=$("$CLIENT" connectdb "$RW" 2>&1)
like "$out" '^FAIL' "(without the shim the same connection fails)"
out=$(LD_PRELOAD=$PRELOAD psql -X -h $PROXY -tAc "select pg_is_in_recovery()" 2>&1)
ok $([ "$out" = f ]; echo $?) "proxy down: unmodified psql still reaches the leader"
"$CL" start-proxy # returns once its checks agree with Patroni
trap - EXIT
done_testing
