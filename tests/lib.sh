# TAP helpers for the shell tests. Source it; call done_testing at the end.
T_N=0
T_FAIL=0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=$ROOT/build
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

# Run the client under the shim; stdout+stderr together.
shim() { LD_PRELOAD=$PRELOAD "$CLIENT" "$@" 2>&1; }
