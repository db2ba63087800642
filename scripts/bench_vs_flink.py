#!/usr/bin/env python3
"""bench-windows and Apache Flink 2.3 on the same workloads, one run, side by side.

    make bench-flink                       # 10 M records, 10 k keys, parallelism 1
    python3 scripts/bench_vs_flink.py --records 2000000 --keys 1000000 --parallelism 1 2

Both sides generate the same records (record i: card (i * 7919) % keys, amount i & 1023, event
time i ms; bounded out-of-orderness 5 s, 200 ms watermark interval) and run tumbling 5 min
count+sum, sliding 30 min / 5 min count+sum, session (30 min gap) and the interval join (−5 min, 0]
into a discarding sink. Flink's figure is its job's net runtime (JobExecutionResult.getNetRuntime,
which leaves out starting the local cluster); ours is execute()'s wall time. The cases run one after
the other, Flink's right after ours, so both see the same machine. Prints events/s and the ratio.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = ["tumbling-5m", "sliding-30m-5m", "session-30m", "interval-join"]
TARGETS = {"tumbling-5m": 10.0, "sliding-30m-5m": 10.0, "interval-join": 10.0}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=10_000_000)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--parallelism", type=int, nargs="+", default=[1])
    p.add_argument("--only", choices=CASES, nargs="+")
    p.add_argument("--bench-bin", default=os.path.join(ROOT, ".build", "release", "bench-windows"))
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args()
    if not os.path.exists(args.bench_bin):
        p.error("%s not found: swift build -c release --product bench-windows" % args.bench_bin)
    cp = subprocess.run([os.path.join(ROOT, "scripts", "flink-jars.sh")], check=True, cwd=ROOT,
                        stdout=subprocess.PIPE, text=True).stdout.strip()
    log4j = "-Dlog4j.configurationFile=" + os.path.join(ROOT, "flink", "conf", "log4j2.properties")
    rows = []
    print("%-16s %2s %10s %14s %14s %8s" % ("case", "p", "records", "tributary ev/s", "flink ev/s", "ratio"), flush=True)
    for case in args.only or CASES:
        for par in args.parallelism:
            with tempfile.TemporaryDirectory() as tmp:
                ours_json, flink_json = os.path.join(tmp, "ours.json"), os.path.join(tmp, "flink.json")
                subprocess.run([args.bench_bin, "--records", str(args.records), "--keys", str(args.keys), "--only", case,
                                "--parallelism", str(par), "--json", ours_json], check=True, stdout=subprocess.DEVNULL)
                subprocess.run(["java", "-Xmx8g", log4j, "-cp", cp, "io.tributary.flink.BenchJobs", "--records",
                                str(args.records), "--keys", str(args.keys), "--only", case, "--parallelism", str(par),
                                "--json", flink_json], check=True, stdout=subprocess.DEVNULL)
                ours = json.load(open(ours_json))["cases"][0]["recordsPerSecond"]
                flink = json.load(open(flink_json))[0]["recordsPerSecond"]
            ratio = ours / flink
            target = TARGETS.get(case)
            verdict = "" if target is None or par != 1 else ("  (target %.0f×: %s)" % (target, "met" if ratio >= target else "NOT met"))
            print("%-16s %2d %10d %14.0f %14.0f %7.1f×%s" % (case, par, args.records, ours, flink, ratio, verdict), flush=True)
            rows.append({"case": case, "parallelism": par, "records": args.records, "keys": args.keys,
                         "tributaryRecordsPerSecond": ours, "flinkRecordsPerSecond": flink, "ratio": ratio})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
