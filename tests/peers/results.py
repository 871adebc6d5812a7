#!/usr/bin/python3
"""Results of the drivers' suites for tests/peers/run.

  results.py junit OUT.tsv FIRST.xml [RERUN.xml]   pytest's JUnit XML -> OUT.tsv, prints the counts
  results.py rspec OUT.tsv FIRST.json [RERUN.json] rspec's JSON       -> OUT.tsv, prints the counts
  results.py rspec-failed FIRST.json               the ids of the failed examples (for a rerun)
  results.py compare A.tsv B.tsv C.tsv             the tests that fail in B or C but not in A

OUT.tsv: one line per test, "status<TAB>id<TAB>message", status passed, failed, skipped, xfailed or
flaky (failed, then passed when the failures were run once more, as the projects' CI does)."""
import json
import os
import sys
import xml.etree.ElementTree as ET


def one_line(s, n=300):
    s = " ".join((s or "").split())
    return s[:n]


def junit(path):
    res = {}
    for tc in ET.parse(path).iter("testcase"):
        tid = "%s::%s" % (tc.get("classname"), tc.get("name"))
        st, msg = "passed", ""
        for kind in ("failure", "error"):
            e = tc.find(kind)
            if e is not None:
                st, msg = "failed", e.get("message") or (e.text or "").strip().splitlines()[-1:]
                msg = msg if isinstance(msg, str) else " ".join(msg)
                break
        else:
            e = tc.find("skipped")
            if e is not None:
                st = "xfailed" if e.get("type") == "pytest.xfail" else "skipped"
                msg = e.get("message") or ""
        # A teardown error of a passed test is a second testcase element with the same id.
        if res.get(tid, ("",))[0] != "failed":
            res[tid] = (st, one_line(msg))
    return res


def rspec(path):
    res = {}
    for ex in json.load(open(path))["examples"]:
        st = {"passed": "passed", "failed": "failed", "pending": "skipped"}[ex["status"]]
        msg = ""
        if ex.get("exception"):
            msg = "%s: %s" % (ex["exception"]["class"], ex["exception"]["message"])
        elif ex.get("pending_message"):
            msg = ex["pending_message"]
        tid = "%s %s" % (ex["id"][2:] if ex["id"].startswith("./") else ex["id"], ex["full_description"])
        res[tid] = (st, one_line(msg), ex["id"])
    return res


def load(kind, first, rerun):
    if not os.path.exists(first) or os.path.getsize(first) == 0:
        return None
    res = {k: v[:2] for k, v in (junit(first) if kind == "junit" else rspec(first)).items()}
    if rerun and os.path.exists(rerun) and os.path.getsize(rerun) > 0:
        again = junit(rerun) if kind == "junit" else rspec(rerun)
        for k, v in again.items():
            if res.get(k, ("",))[0] == "failed" and v[0] == "passed":
                res[k] = ("flaky", res[k][1])
    return res


def summarize(kind, out, first, rerun=None):
    res = load(kind, first, rerun)
    if res is None:
        print("no results (the run was stopped or did not start)")
        open(out, "w").close()
        return
    with open(out, "w") as f:
        for k in sorted(res):
            f.write("%s\t%s\t%s\n" % (res[k][0], k, res[k][1]))
    n = {s: sum(1 for v in res.values() if v[0] == s) for s in ("passed", "failed", "skipped", "xfailed", "flaky")}
    line = "passed %d, failed %d, skipped %d" % (n["passed"] + n["flaky"], n["failed"], n["skipped"])
    if n["xfailed"]:
        line += " (+ %d xfailed)" % n["xfailed"]
    if n["flaky"]:
        line += "; %d more failed on the first pass only (passed when run again)" % n["flaky"]
    print(line)


def read_tsv(path):
    res = {}
    if os.path.exists(path):
        for line in open(path):
            st, tid, msg = line.rstrip("\n").split("\t", 2)
            res[tid] = (st, msg)
    return res


def compare(a, b, c):
    ra, rb, rc = read_tsv(a), read_tsv(b), read_tsv(c)
    if not ra:
        print("  (no results without the shim: nothing to compare)")
        return
    found = 0
    for tid in sorted(set(rb) | set(rc)):
        if ra.get(tid, ("",))[0] == "failed":
            continue
        ways = [w for w, r in (("b", rb), ("c", rc)) if r.get(tid, ("",))[0] == "failed"]
        if not ways:
            continue
        found += 1
        r = rc if "c" in ways else rb
        note = ""
        if ra.get(tid, ("",))[0] == "flaky":
            note = "\n        (in (a) too, on its first pass: %s)" % ra[tid][1][:100]
        print("  [%s] %s\n        %s%s" % ("+".join(ways), tid, r[tid][1], note))
    if not found:
        print("  none")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd in ("junit", "rspec"):
        summarize(cmd, sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    elif cmd == "rspec-failed":
        for v in rspec(sys.argv[2]).values():
            if v[0] == "failed":
                print(v[2])
    elif cmd == "compare":
        compare(*sys.argv[2:5])
    else:
        sys.exit(__doc__)
