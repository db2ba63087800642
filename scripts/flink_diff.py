#!/usr/bin/env python3
"""Differential test: the same jobs on Apache Flink 2.3 and on Tributary, same generated input, diffed.

    scripts/flink_diff.py                 # the small data set CI runs
    scripts/flink_diff.py --events 200000 --keys 500   # a larger run (make flink-diff-large)

Generates seeded events (out of order within the bound, some late within the allowed lateness,
some far too late, negative timestamps included), runs flink/src/.../DiffJobs.java on Flink
(scripts/flink-jars.sh fetches Flink's jars) and Tools/FlinkDiff on Tributary, and compares each
job's output as a multiset of rows. Interval joins pass when the pairs Flink guarantees (both rows
ahead of their stream's watermark on arrival) ⊆ output ⊆ the relational join, for Flink's output
and for ours. Exit status 0 when every job matches. Standard library only.
"""
import argparse
import bisect
import collections
import os
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Jobs compared row for row (multisets), and joins compared by the containment criterion.
EXACT_JOBS = ["sql-tumble", "sql-hop", "sql-over", "ds-tumble", "ds-slide", "ds-session", "ds-timers",
              "ds-count", "ds-count-sliding"]
# name -> (lower ms, upper ms, upper exclusive, watermark rule: "sql" = maxTs - b (above 0), "ds" =
# maxTs - b - 1, whether Flink's operator emits every guaranteed pair)
JOIN_JOBS = {"sql-join": (-5000, 1000, False, "sql", False), "ds-join": (-5000, 1000, True, "ds", True)}


def generate(n, keys, seed, bound, lateness, late_share, far_late_share, start):
    """Rows (key, ts, value) in arrival order."""
    rnd = random.Random(seed)
    t = start
    rows = []
    for _ in range(n):
        t += rnd.randint(0, 40)
        r = rnd.random()
        if r < far_late_share:
            ts = t - bound - lateness - rnd.randint(1, 40_000)
        elif r < far_late_share + late_share:
            ts = t - bound - rnd.randint(1, lateness)
        else:
            ts = t - rnd.randint(0, bound)
        key = int(keys * rnd.random() ** 2)  # skewed: low keys are hot
        rows.append((key, ts, rnd.randint(1, 1000)))
    return rows


def write_rows(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write("%d,%d,%d\n" % r)


def read_multiset(path):
    with open(path) as f:
        return collections.Counter(line.strip() for line in f if line.strip())


def on_time(rows, bound, rule):
    """Rows ahead of their own stream's watermark on arrival (late = ts < watermark). The DataStream
    rule's watermark is maxTs - b - 1; the SQL rule's is maxTs - b, emitted only above 0."""
    wm = None
    out = []
    for k, ts, v in rows:
        if wm is None or ts >= wm:
            out.append((k, ts, v))
        cand = ts - bound - (1 if rule == "ds" else 0)
        if (wm is None or cand > wm) and (rule == "ds" or cand > 0):
            wm = cand
    return out


def join_pairs(left, right, lower, upper, upper_exclusive):
    """The relational interval join: right.ts in [left.ts + lower, left.ts + upper] per key."""
    by_key = collections.defaultdict(list)
    for k, ts, v in right:
        by_key[k].append((ts, v))
    for rows in by_key.values():
        rows.sort()
    pairs = collections.Counter()
    for k, lts, lv in left:
        rows = by_key.get(k)
        if not rows:
            continue
        lo = bisect.bisect_left(rows, (lts + lower, -sys.maxsize))
        hi = bisect.bisect_left(rows, (lts + upper, -sys.maxsize)) if upper_exclusive \
            else bisect.bisect_right(rows, (lts + upper, sys.maxsize))
        for rts, rv in rows[lo:hi]:
            pairs["%d,%d,%d,%d,%d" % (k, lts, lv, rts, rv)] += 1
    return pairs


def show(rows, limit=5):
    return "; ".join(sorted(rows)[:limit]) + (" …" if len(rows) > limit else "")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=4000, help="events per input stream (default 4000)")
    p.add_argument("--keys", type=int, default=25)
    p.add_argument("--seed", type=int, default=20261125)
    p.add_argument("--bound-ms", type=int, default=2000, help="out-of-orderness bound, whole seconds (SQL intervals)")
    p.add_argument("--lateness-ms", type=int, default=5000, help="allowed lateness of the DataStream window jobs")
    p.add_argument("--late-share", type=float, default=0.05, help="share of records late within the allowed lateness")
    p.add_argument("--far-late-share", type=float, default=0.02, help="share of records far too late")
    p.add_argument("--start-ms", type=int, default=-60_000, help="first event time (negative: windows before the epoch)")
    p.add_argument("--work-dir", help="keep inputs and outputs here (default: a temporary directory)")
    p.add_argument("--only", help="run one job")
    p.add_argument("--tributary-bin", default=os.path.join(ROOT, ".build", "debug", "flink-diff-tributary"),
                   help="the Tributary side (swift build --product flink-diff-tributary)")
    args = p.parse_args()
    if args.bound_ms % 1000:
        p.error("--bound-ms must be whole seconds (it becomes a SQL INTERVAL)")
    if not os.path.exists(args.tributary_bin):
        p.error("%s not found: run `swift build --product flink-diff-tributary` first" % args.tributary_bin)

    work = args.work_dir or tempfile.mkdtemp(prefix="flink-diff-")
    inp, out_f, out_t = (os.path.join(work, d) for d in ("input", "flink", "tributary"))
    for d in (inp, out_f, out_t):
        os.makedirs(d, exist_ok=True)
    events = generate(args.events, args.keys, args.seed, args.bound_ms, args.lateness_ms, args.late_share,
                      args.far_late_share, args.start_ms)
    right = generate(args.events, args.keys, args.seed + 1, args.bound_ms, args.lateness_ms, args.late_share,
                     args.far_late_share, args.start_ms)
    write_rows(os.path.join(inp, "events.csv"), events)
    write_rows(os.path.join(inp, "right.csv"), right)
    print("flink-diff: %d events per stream, %d keys, seed %d, bound %d ms, lateness %d ms, in %s"
          % (args.events, args.keys, args.seed, args.bound_ms, args.lateness_ms, work), flush=True)

    common = ["--input", inp, "--bound-ms", str(args.bound_ms), "--lateness-ms", str(args.lateness_ms)]
    if args.only:
        common += ["--only", args.only]
    cp = subprocess.run([os.path.join(ROOT, "scripts", "flink-jars.sh")], check=True, cwd=ROOT,
                        stdout=subprocess.PIPE, text=True).stdout.strip()
    t0 = time.time()
    subprocess.run(["java", "-Xmx2g", "-Dlog4j.configurationFile=" + os.path.join(ROOT, "flink", "conf", "log4j2.properties"), "-cp", cp, "io.tributary.flink.DiffJobs", "--output", out_f]
                   + common, check=True, cwd=ROOT)
    t1 = time.time()
    subprocess.run([args.tributary_bin, "--output", out_t] + common, check=True)
    t2 = time.time()
    print("flink-diff: Flink %.1f s, Tributary %.1f s" % (t1 - t0, t2 - t1))

    failures = 0
    for job in EXACT_JOBS + list(JOIN_JOBS):
        if args.only and job != args.only:
            continue
        flink = read_multiset(os.path.join(out_f, job + ".csv"))
        ours = read_multiset(os.path.join(out_t, job + ".csv"))
        if job in JOIN_JOBS:
            lower, upper, upper_excl, rule, flink_guarantees = JOIN_JOBS[job]
            relational = join_pairs(events, right, lower, upper, upper_excl)
            guaranteed = join_pairs(on_time(events, args.bound_ms, rule), on_time(right, args.bound_ms, rule),
                                    lower, upper, upper_excl)
            # Ours: every guaranteed pair, nothing outside the join.
            problems = []
            missing, extra = guaranteed - ours, ours - relational
            if missing:
                problems.append("tributary lacks %d guaranteed pairs: %s" % (sum(missing.values()), show(missing)))
            if extra:
                problems.append("tributary has %d pairs outside the join: %s" % (sum(extra.values()), show(extra)))
            # Flink's output validates the data and the criterion: never a pair outside the join, and
            # for the DataStream join (the operator we implement) every guaranteed pair. Flink SQL's
            # time-interval join is a different operator (operator time floored at 0, its cache
            # expired on the combined watermark), which does not emit every such pair: its shortfall
            # is reported, and Flink's pairs that are guaranteed must all be in ours (G ⊆ ours says so).
            if flink - relational:
                problems.append("flink has pairs outside the join: the generated data or the criterion is wrong: %s"
                                % show(flink - relational))
            flink_missing = guaranteed - flink
            if flink_guarantees and flink_missing:
                problems.append("flink lacks %d guaranteed pairs: the criterion is wrong: %s"
                                % (sum(flink_missing.values()), show(flink_missing)))
            verdict = "ok" if not problems else "FAIL"
            print("%-4s %-17s guaranteed %d ⊆ tributary %d ⊆ relational %d; flink %d%s"
                  % (verdict, job, sum(guaranteed.values()), sum(ours.values()), sum(relational.values()),
                     sum(flink.values()), "" if not flink_missing else " (Flink SQL's join: %d guaranteed pairs not emitted)"
                     % sum(flink_missing.values())))
            for pr in problems:
                print("       " + pr)
        else:
            only_flink, only_ours = flink - ours, ours - flink
            problems = only_flink or only_ours or not flink
            verdict = "FAIL" if problems else "ok"
            print("%-4s %-17s %d rows%s" % (verdict, job, sum(flink.values()),
                                            "" if flink else " (Flink produced nothing: the test would prove nothing)"))
            if only_flink:
                print("       only in Flink (%d): %s" % (sum(only_flink.values()), show(only_flink)))
            if only_ours:
                print("       only in Tributary (%d): %s" % (sum(only_ours.values()), show(only_ours)))
        failures += 1 if problems else 0
    total = len([j for j in EXACT_JOBS + list(JOIN_JOBS) if not args.only or j == args.only])
    print("flink-diff: %d of %d jobs match Apache Flink" % (total - failures, total))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
