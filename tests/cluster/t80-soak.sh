# The chaos soak, short (SOAK_SECONDS, default 45 here; `make soak` runs 300). Events begin in the
# first 35 s, as they did with 60 s and the default tail of 25 s (a switchover, then a leader crash
# and whatever fits after it); only the quiet tail after the last event is shorter (10 s).
cd "$(dirname "$0")/../.."
SOAK_SECONDS=${SOAK_SECONDS:-45} SOAK_TAIL=${SOAK_TAIL:-10} exec tests/soak
