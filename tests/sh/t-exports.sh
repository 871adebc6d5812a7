# The preload library exports only the libpq names it wraps; libpqroute.so only the pqr_* API.
. "$(dirname "$0")/../lib.sh"
got=$(nm -D --defined-only "$PRELOAD" | awk '$2 ~ /[TDBW]/ {print $3}' | sort | tr '\n' ' ')
ok $([ "$got" = "PQconnectStart PQconnectStartParams PQconnectdb PQconnectdbParams PQping PQpingParams PQsetdbLogin dlopen dlsym " ]; echo $?) \
   "preload exports exactly the wrapped libpq names and dlopen/dlsym ($got)"
want=$( (grep -o '^PQR_EXPORT [^(]*(' "$ROOT/libpqroute/libpqroute.h" | sed 's/.*[ *]\(pqr_[a-z_]*\)($/\1/'; echo pqr__shim_api) | sort | tr '\n' ' ')
got=$(nm -D --defined-only "$B/libpqroute.so" | awk '$2 ~ /[TDBW]/ {sub(/@.*/, "", $3); print $3}' | sort | tr '\n' ' ')
ok $([ "$got" = "$want" ]; echo $?) "libpqroute.so exports exactly the documented pqr_* functions (and the shim's entry)"
[ "$got" = "$want" ] || diag "got: $got" "want: $want"
soname=$(readelf -d "$B/libpqroute.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
like "$soname" '^libpqroute\.so\.[0-9]+$' "libpqroute.so has a versioned soname ($soname)"
needed=$(readelf -d "$PRELOAD" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')
like "$needed" '^(libc\.so\.6 |libpthread\.so\.0 |libdl\.so\.2 |ld-linux[-a-z0-9_.]*\.so\.[0-9] )+$' "the preload library links nothing but libc ($needed)"
unlike "$(readelf -d "$B/libpqroute.so" | grep NEEDED)" 'libcurl' "libpqroute.so loads libcurl only when it fetches"
done_testing
