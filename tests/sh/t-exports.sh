# The preload library exports only the libpq names it wraps; libpqroute.so only the pqr_* API.
. "$(dirname "$0")/../lib.sh"
got=$(nm -D --defined-only "$PRELOAD" | awk '$2 ~ /[TDBW]/ {print $3}' | sort | tr '\n' ' ')
ok $([ "$got" = "PQconnectPoll PQconnectStart PQconnectStartParams PQconnectdb PQconnectdbParams PQconninfo PQfinish PQping PQpingParams PQsetdbLogin PQsocket dlopen dlsym " ]; echo $?) \
   "preload exports exactly the wrapped libpq names and dlopen/dlsym ($got)"
want=$( (grep -o '^PQR_EXPORT [^(]*(' "$ROOT/libpqroute/libpqroute.h" | sed 's/.*[ *]\(pqr_[a-z_]*\)($/\1/'; echo pqri_shim_api) | sort | tr '\n' ' ')
got=$(nm -D --defined-only "$B/libpqroute.so" | awk '$2 ~ /[TDBW]/ {sub(/@.*/, "", $3); print $3}' | sort | tr '\n' ' ')
ok $([ "$got" = "$want" ]; echo $?) "libpqroute.so exports exactly the documented pqr_* functions (and the shim's entry)"
[ "$got" = "$want" ] || diag "got: $got" "want: $want"
soname=$(readelf -d "$B/libpqroute.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
like "$soname" '^libpqroute\.so\.[0-9]+$' "libpqroute.so has a versioned soname ($soname)"
needed=$(readelf -d "$PRELOAD" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')
like "$needed" '^(libc\.so\.6 |libpthread\.so\.0 |libdl\.so\.2 |ld-linux[-a-z0-9_.]*\.so\.[0-9] )+$' "the preload library links nothing but libc ($needed)"
unlike "$(readelf -d "$B/libpqroute.so" | grep NEEDED)" 'libcurl' "libpqroute.so loads libcurl only when it fetches"
# Internal functions are pqri_*, which the export pattern (pqr_*) cannot match: even a build that
# makes every symbol visible exports only the public names.
vis=$(mktemp -d)
make -s -C "$ROOT" B="$vis" VISIBILITY=-fvisibility=default "$vis/libpqroute.so" >/dev/null 2>&1
got=$(nm -D --defined-only "$vis/libpqroute.so" 2>/dev/null | awk '$2 ~ /[TDBW]/ {sub(/@.*/, "", $3); print $3}' | sort | tr '\n' ' ')
ok $([ "$got" = "$want" ]; echo $?) "built with -fvisibility=default: still only the documented names"
[ "$got" = "$want" ] || diag "got: $got"
rm -rf "$vis"
done_testing
