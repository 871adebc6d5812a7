# Clients that load libpq with dlopen() and call it through dlsym(handle, ...) — ctypes-based
# drivers do — get libpq's own PQconnectdb. But libpq enters its own PQconnectStart through the PLT,
# which the shim interposes: such clients are routed with the non-blocking rules (cache only, no
# first-connect wait, no retry). The first connect of a fresh process may go to the front door.
. "$(dirname "$0")/lib-cluster.sh"
py='import ctypes, sys
pq = ctypes.CDLL("libpq.so.5")
pq.PQconnectdb.restype = ctypes.c_void_p
pq.PQexec.restype = ctypes.c_void_p
pq.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
pq.PQgetvalue.restype = ctypes.c_char_p
pq.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
pq.PQstatus.argtypes = [ctypes.c_void_p]
import time
for i in range(2):
    c = pq.PQconnectdb(sys.argv[1].encode())
    if pq.PQstatus(c) != 0: print("FAIL"); sys.exit(1)
    r = pq.PQexec(c, b"select concat_ws(chr(32), host(inet_client_addr()), pg_is_in_recovery())")
    print("OK", pq.PQgetvalue(r, 0, 0).decode())
    # until the refresher has written its view (15 s at most), not for a fixed time
    import glob, os
    for _ in range(150):
        if glob.glob(os.environ["PQROUTE_CACHE_DIR"] + "/*.json"): break
        time.sleep(0.1)'
export PQROUTE_CACHE_DIR=$(mktemp -d)
out=$(LD_PRELOAD=$PRELOAD python3 -c "$py" "$RW" 2>&1)
like "$(head -1 <<<"$out")" "^OK [0-9.]+ f$" "ctypes client, fresh process, no cached view: connects to the leader ($(head -1 <<<"$out"))"
like "$(sed -n 2p <<<"$out")" "^OK 127\.0\.0\.1 f$" "ctypes client, once the refresher has a view: routed directly to the leader"
rm -rf "$PQROUTE_CACHE_DIR"
done_testing
