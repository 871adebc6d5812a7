# TAP helpers for the shell tests. Source it; call done_testing at the end.
T_N=0
T_FAIL=0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=${PQR_BUILD:-$ROOT/build} # PQR_BUILD: test another build directory
PRELOAD=$B/libpqroute-preload.so
CLIENT=$B/tests/pqr-client

ok() { # status description
    T_N=$((T_N + 1))
    if [ "$1" = 0 ]; then echo "ok $T_N - $2"; else echo "not ok $T_N - $2"; T_FAIL=$((T_FAIL + 1)); return 1; fi
}
check() { local d=$1; shift; if "$@"; then ok 0 "$d"; else ok 1 "$d"; fi; }
like() { # text regex description
    if [[ $1 =~ $2 ]]; then ok 0 "$3"; else ok 1 "$3"; printf '#   got: %s\n#   want /%s/\n' "${1:0:600}" "$2"; fi
}
unlike() {
    if [[ $1 =~ $2 ]]; then ok 1 "$3"; printf '#   got: %s\n#   must not match /%s/\n' "${1:0:600}" "$2"; else ok 0 "$3"; fi
}
diag() { printf '# %s\n' "$*"; }
done_testing() { echo "1..$T_N"; [ "$T_FAIL" = 0 ]; }
ms() { date +%s%3N; }
# wait_for SECONDS command...: run the command every 0.1 s until it succeeds; 1 after SECONDS.
wait_for() { local n=$(( $1 * 10 )); shift; for _ in $(seq $n); do "$@" && return 0; sleep 0.1; done; return 1; }

# Run the client under the shim; stdout+stderr together.
shim() { LD_PRELOAD=$PRELOAD "$CLIENT" "$@" 2>&1; }

# A test server that prints "ready" once it listens: started in the background, its pid in BG_PID
# (and in BG_PIDS, for stop_servers at exit); 1 if it did not get ready within 5 s.
BG_PIDS=()
start_server() { # outfile command...
    local out=$1 i
    shift
    "$@" >"$out" 2>&1 &
    BG_PID=$!
    BG_PIDS+=("$BG_PID")
    for i in $(seq 50); do grep -q ready "$out" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
stop_servers() { local p; for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done; }

# TLS material for a test: in DIR, a certificate NAME (CN, subjectAltName SAN) signed by SIGNER
# (SIGNER.crt/.key in DIR; make a CA with make_ca).
make_ca() { # dir name
    openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$1/$2.key" -subj "/CN=$2" -days 2 -out "$1/$2.crt" 2>/dev/null
}
make_cert() { # dir name subject san signer
    local d=$1
    openssl req -new -newkey rsa:2048 -nodes -keyout "$d/$2.key" -subj "$3" -out "$d/$2.csr" 2>/dev/null
    printf 'subjectAltName=%s\n' "$4" >"$d/$2.ext"
    openssl x509 -req -in "$d/$2.csr" -CA "$d/$5.crt" -CAkey "$d/$5.key" -CAcreateserial -days 2 \
        -extfile "$d/$2.ext" -out "$d/$2.crt" 2>/dev/null
    chmod 600 "$d/$2.key"
}
