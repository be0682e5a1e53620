"""Memory over time: many concurrent PullUsers in one Locust process against a static nginx
serving a tiny image (so that the server is never the bottleneck), the process's RSS sampled
every few seconds.

    /work/venv/bin/python bench/soak.py                          # 1,000 users for 10 minutes
    /work/venv/bin/python bench/soak.py --short                  # 1,000 users for 20 s (CI)
    /work/venv/bin/python bench/soak.py --users 2000 --minutes 30

Printed: the samples, the peak, and the least-squares slope of RSS after the ramp-up
(MiB/min; ~0 means no growth trend). Target (issue 4): 1,000 users stay under 300 MiB RSS.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import LOCUSTFILES, StaticServer, header, run_locust, slope, verdict  # noqa: E402

TARGET_MIB = 300.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="20 s (CI smoke run)")
    parser.add_argument("--minutes", type=float, default=10.0, help="run time (default 10)")
    parser.add_argument("--users", type=int, default=1000, help="concurrent PullUsers (default 1000)")
    parser.add_argument("--spawn-rate", type=float, default=200.0, help="users started per second (default 200)")
    parser.add_argument("--every", type=float, help="seconds between RSS samples (default 5, --short 1)")
    parser.add_argument(
        "--regload-path", help="import regload from this directory instead (e.g. an export of another commit)"
    )
    args = parser.parse_args()
    seconds = 20.0 if args.short else args.minutes * 60
    every = args.every or (1.0 if args.short else 5.0)
    ramp = args.users / args.spawn_rate + 3.0  # startup and spawning: not part of the trend

    with StaticServer() as server:
        image = server.image
        header(f"soak: {args.users} PullUsers, one Locust process, {seconds:g} s, nginx static image at {server.url}")
        run = run_locust(
            LOCUSTFILES / "regload_pull.py",
            server.url,
            args.users,
            seconds,
            ["PullUser"],
            ["--pull-image", f"{image.repository}:{image.tag}", "--pull-pool-size", "0"],
            spawn_rate=args.spawn_rate,
            env={"PYTHONPATH": args.regload_path} if args.regload_path else None,
            sample_every=every,
            timeout=seconds + 120,
        )
    if not run.rss_samples or not run.requests:
        print(f"soak: the run failed (exit {run.code}):\n{run.output[-3000:]}", file=sys.stderr)
        return 1
    header("RSS samples (seconds since start: MiB)")
    line = []
    for t, rss in run.rss_samples:
        line.append(f"{t:6.1f}s {rss:6.1f}")
        if len(line) == 6:
            print("   ".join(line))
            line = []
    if line:
        print("   ".join(line))
    steady = [(t / 60, rss) for t, rss in run.rss_samples if t >= ramp]
    peak = max(rss for _, rss in run.rss_samples)
    trend = slope(steady)
    header("result")
    print(f"requests: {run.requests} ({run.rps:.0f} req/s), failures: {run.failures}")
    print(
        f"peak RSS: {peak:.1f} MiB (target < {TARGET_MIB:g} MiB: {verdict(peak, TARGET_MIB, higher_is_better=False)})"
    )
    if len(steady) >= 2:
        span = steady[-1][0] - steady[0][0]
        print(
            f"RSS slope after ramp-up: {trend:+.2f} MiB/min over {span:.1f} min "
            f"({steady[0][1]:.1f} → {steady[-1][1]:.1f} MiB)"
        )
    else:
        print("RSS slope: too few samples after ramp-up")
    return 0 if run.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
