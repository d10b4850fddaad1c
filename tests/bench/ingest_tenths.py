#!/usr/bin/python3
"""The time series of tests/bench/ingest.sh condensed per tenth of the
files: for each tenth, the PUT/s over it (the progress samples
interpolated where the tenth begins and ends) and the largest RSS/anon of
each gateway worker in the samples taken during it.

usage: ingest_tenths.py SERIES FILES [SECONDS]

SECONDS: when the last file was done (bench_put's seconds=), for the end
of the last tenth when the last sample came before it.

SERIES lines (ingest_watch.py --series): t files rps errors
RSS/anon... (one per worker) cpu_gateway cpu_stub cpu_client cpu_other.
"""

import sys


def main():
    path, total = sys.argv[1], int(sys.argv[2])
    samples = [(0.0, 0, [])]
    for line in open(path):
        f = line.split()
        if len(f) < 8:
            continue
        rss = [tuple(float(x) for x in w.split("/")) for w in f[4:-4]]
        samples.append((float(f[0]), int(f[1]), rss))
    if len(samples) < 2:
        return
    if len(sys.argv) > 3 and samples[-1][1] < total:
        # the end: no RSS sampled there, the last sample's stands in
        samples.append((float(sys.argv[3]), total, samples[-1][2]))

    def when(n):
        """the time the n-th file was done, interpolated"""
        for (t0, n0, _), (t1, n1, _) in zip(samples, samples[1:]):
            if n0 <= n <= n1 and n1 > n0:
                return t0 + (t1 - t0) * (n - n0) / (n1 - n0)
        return None

    print("   tenth  files              PUT/s   largest RSS/anon MB of workers")
    for k in range(10):
        a, b = total * k // 10, total * (k + 1) // 10
        ta, tb = when(a), when(b)
        if ta is None or tb is None or tb <= ta:
            continue
        inside = [s for s in samples[1:] if ta <= s[0] <= tb + 1e-9]
        if not inside:
            # a tenth shorter than a period: the sample that ends it
            inside = [next(s for s in samples[1:] if s[0] >= tb)]
        nw = len(inside[0][2])
        peak = []
        for w in range(nw):
            peak.append(max((s[2][w] for s in inside if len(s[2]) == nw),
                            key=lambda x: x[0]))
        print("   %5d  %7d-%-7d  %6.0f   %s" % (
            k + 1, a, b, (b - a) / (tb - ta),
            "  ".join("%.1f/%.1f" % x for x in peak)))


if __name__ == "__main__":
    main()
