# The chaos soak, short (SOAK_SECONDS, default 60 here; `make soak` runs 300).
cd "$(dirname "$0")/../.."
SOAK_SECONDS=${SOAK_SECONDS:-60} exec tests/soak
