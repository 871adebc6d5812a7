# What README "Layout" claims and a machine can check: no circle between parts, a unit suite for
# each part that has logic of its own, internal names with the internal prefix, and the tree as
# .clang-format lays it out.
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"

out=$(python3 scripts/part-cycles.py "$B/obj" 2>&1)
ok $? "no part calls back into a part that calls it (scripts/part-cycles.py${out:+: $out})"

# A part is covered by its own suite (tests/unit/test_<part>.c, or tests/sh/t-<part>.sh for one
# that needs servers), or by a unit suite that includes its header; the files of the view part
# (those that include view_int.h) by test_view.c. Glue is left out: the public API (api.c, every
# test goes through it), the linked libpq's table (direct.c), logging (log.c).
missing=
for c in libpqroute/*.c; do
    p=$(basename "$c" .c)
    case $p in api | direct | log) continue ;; esac
    grep -q '"view_int.h"' "$c" && p=view
    [ -e "tests/unit/test_$p.c" ] || [ -e "tests/sh/t-$p.sh" ] || grep -lq "\"$p.h\"" tests/unit/test_*.c ||
        missing="$missing $p"
done
ok $([ -z "$missing" ]; echo $?) "every part has a suite of its own or one that includes its header${missing:+ (none for:$missing)}"

bad=$(grep -nE '#define PQR_|\bPQR_(LOG|STAT|MAX)_[A-Z_]+\b|\bPQR_(BLOCKING|NONBLOCKING)\b' libpqroute/*.[ch] shim/*.[ch] |
      grep -v '^libpqroute/libpqroute.h:' | head -5)
ok $([ -z "$bad" ]; echo $?) "internal macros and constants use the internal prefix (PQRI_), not the public one${bad:+: $bad}"

if command -v clang-format >/dev/null; then
    files=$(ls libpqroute/*.[ch] shim/*.[ch] cli/*.c)
    out=$(clang-format --dry-run --Werror $files 2>&1 | grep -m5 'error:')
    ok $([ -z "$out" ]; echo $?) "the sources are as .clang-format lays them out (clang-format -i to fix)${out:+: $out}"
else
    ok 1 "clang-format is installed (scripts/install-deps)"
fi
done_testing
