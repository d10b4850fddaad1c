#!/usr/bin/python3
"""Compare two junit files of ceph/s3-tests runs: directly against RGW and
through the zarr gateway (tests/s3tests/run.sh).

    compare.py [--known FILE] [--times FILE] DIRECT.xml GATEWAY.xml

Prints how many tests passed each way, then every regression: a test that
passed directly but not through the gateway (failed, error, skipped or
missing), with the first line of its failure message.  Tests that fail
directly cannot be compared and are only counted; tests that pass only
through the gateway are listed too (they are suspicious: the gateway
should change nothing).

--known FILE: the allow-list, one line per test: its name (as junit names
it, e.g. test_100_continue or test_x[param]), whitespace, the reason;
`#` starts a comment.  Exit status 1 when a regression is not on it, else 0
(2 on bad input).  Entries that no longer regress are reported, so that the
list stays short and true.
"""

import argparse
import sys
import xml.etree.ElementTree as ET


def load(path):
    """{test name: (outcome, first line of its message)} of a junit file;
    outcome is passed, failed, error or skipped."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        sys.exit(f"compare.py: {path}: {e}")
    results = {}
    for case in root.iter("testcase"):
        name = case.get("name", "")
        outcome, msg = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = "failed" if tag == "failure" else tag
                msg = el.get("message") or (el.text or "")
                break
        msg = msg.strip().splitlines()[0] if msg.strip() else ""
        # a test that fails in teardown has both a result and an error:
        # the worst one counts
        old = results.get(name)
        if old is not None and old[0] != "passed":
            continue
        results[name] = (outcome, msg)
    return results


def load_known(path):
    known = {}
    if path is None:
        return known
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as e:
        sys.exit(f"compare.py: {path}: {e}")
    for n, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            sys.exit(f"compare.py: {path}:{n}: a test name and a reason, "
                     f"please: {line!r}")
        known[parts[0]] = parts[1]
    return known


def counts(results):
    c = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    for outcome, _ in results.values():
        c[outcome] += 1
    return c


def fmt_counts(c):
    total = sum(c.values())
    return (f"{c['passed']} passed, {c['failed']} failed, {c['error']} "
            f"errors, {c['skipped']} skipped, of {total}")


def short(msg, width=150):
    return msg if len(msg) <= width else msg[:width - 3] + "..."


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("direct")
    ap.add_argument("gateway")
    ap.add_argument("--known", help="allow-list of known differences")
    ap.add_argument("--times", help="file of 'MODE SECONDS' lines")
    args = ap.parse_args()

    direct = load(args.direct)
    gateway = load(args.gateway)
    known = load_known(args.known)

    cd, cg = counts(direct), counts(gateway)
    print(f"direct to RGW:       {fmt_counts(cd)}")
    print(f"through the gateway: {fmt_counts(cg)}")
    if args.times:
        try:
            for line in open(args.times, encoding="utf-8"):
                mode, secs = line.split()
                s = int(secs)
                print(f"time {mode}: {s // 60} min {s % 60} s")
        except (OSError, ValueError) as e:
            print(f"(times: {e})")

    regressions, gained = [], []
    for name, (outcome, _) in sorted(direct.items()):
        g = gateway.get(name, ("missing", "not run through the gateway"))
        if outcome == "passed" and g[0] != "passed":
            regressions.append((name, g))
        elif outcome != "passed" and g[0] == "passed":
            gained.append(name)

    unknown = [r for r in regressions if r[0] not in known]
    print()
    print(f"regressions (pass direct, not through the gateway): "
          f"{len(regressions)}, {len(unknown)} not in the allow-list")
    for name, (outcome, msg) in regressions:
        tag = "known" if name in known else "NEW"
        print(f"  {tag:5} {name}: {outcome}: {short(msg)}")
        if name in known:
            print(f"        ({known[name]})")
    if gained:
        print()
        print(f"pass only through the gateway: {len(gained)}")
        for name in gained:
            d = direct[name]
            print(f"  {name} (direct: {d[0]}: {short(d[1], 100)})")
    stale = sorted(n for n in known
                   if n not in dict(regressions))
    if stale:
        print()
        print("allow-list entries that did not regress in this run "
              "(fixed, or not run):")
        for name in stale:
            print(f"  {name}")
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main())
