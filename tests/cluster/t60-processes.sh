# Pre-fork servers and many threads: a parent that connects (refresher running) forks workers that
# connect; threads connect at once. None lands on a replica, none hangs.
. "$(dirname "$0")/lib-cluster.sh"
out=$(LD_PRELOAD=$PRELOAD timeout 60 "$CLIENT" prefork 6 10 "$RW" 2>&1)
like "$out" 'parent: OK .*recovery=f' "pre-fork parent connects to the leader"
ok $([ "$(grep -c 'child .*: ok=10 fail=0 replica=0' <<<"$out")" = 6 ]; echo $?) "6 forked workers x 10 connects each, all on the leader"
like "$out" 'children failed: 0' "every worker exited cleanly"
out=$(LD_PRELOAD=$PRELOAD timeout 60 "$CLIENT" threads 32 10 "$RW" 2>&1)
like "$out" 'threads=32 ok=320 fail=0 replica=0' "32 threads x 10 connects at once ($out)"
out=$(LD_PRELOAD=$PRELOAD timeout 60 "$CLIENT" threads 16 10 "$RO" 2>&1)
like "$out" 'threads=16 ok=160 fail=0' "16 threads x 10 RO connects"
# Non-blocking connects from many threads at once (cache only, never a wait).
out=$(LD_PRELOAD=$PRELOAD timeout 60 "$CLIENT" startparams host=$PROXY port=5432 2>&1)
like "$out" 'OK .*recovery=f' "PQconnectStartParams routed from a warm shared cache"
done_testing
