#!/usr/bin/env python3
"""Which parts of libpqroute call which (a part: one object file, name.o from name.c), from the
objects' own symbol tables (nm): part A uses part B when A refers to a symbol B defines. Prints
every circle, one per line ("a -> b -> a"), and exits 1 if there is one. Calls through a table of
function pointers (the shim's, libpq's) are not references, by design: a table is an interface.
   usage: part-cycles.py BUILD/obj"""
import os, subprocess, sys

objdir = sys.argv[1] if len(sys.argv) > 1 else "build/obj"
defs, refs = {}, {}
for f in sorted(os.listdir(objdir)):
    if not f.endswith(".o") or f.startswith("shim-"):
        continue
    part = f[:-2]
    refs[part] = set()
    out = subprocess.run(["nm", os.path.join(objdir, f)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        bits = line.split()
        if len(bits) == 3 and bits[1] in "TDBRVW" and bits[2].startswith("pqri_"):
            defs[bits[2]] = part
        elif len(bits) == 2 and bits[0] == "U" and bits[1].startswith("pqri_"):
            refs[part].add(bits[1])
uses = {p: sorted({defs[s] for s in syms if s in defs and defs[s] != p}) for p, syms in refs.items()}

cycles, state, path = set(), {}, []
def visit(n):
    state[n] = 1
    path.append(n)
    for m in uses.get(n, ()):
        if state.get(m) == 1:
            c = path[path.index(m):]
            k = c.index(min(c))
            cycles.add(tuple(c[k:] + c[:k]))
        elif not state.get(m):
            visit(m)
    path.pop()
    state[n] = 2
for n in sorted(uses):
    if not state.get(n):
        visit(n)
if "-v" in sys.argv:
    for p in sorted(uses):
        print("%s: %s" % (p, " ".join(uses[p])))
for c in sorted(cycles):
    print(" -> ".join(c + (c[0],)))
sys.exit(1 if cycles else 0)
