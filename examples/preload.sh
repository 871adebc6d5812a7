#!/bin/sh
# The LD_PRELOAD recipe for an unmodified application: point libpqroute at Patroni and at the front
# doors the application already uses, and preload the shim. Nothing else changes.
export PQROUTE_PATRONI=http://10.0.0.11:8008,http://10.0.0.12:8008,http://10.0.0.13:8008
export PQROUTE_RW=traefik.internal:5432
export PQROUTE_RO=traefik.internal:5433
export PQROUTE_LOG=info          # one line per routing decision while you try it
exec env LD_PRELOAD="/usr/local/lib/libpqroute-preload.so${LD_PRELOAD:+ $LD_PRELOAD}" "$@"
# or: pqroute exec -- "$@"
