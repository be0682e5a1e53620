"""Per-request cost: regload's PullUser beside Locust's FastHttpUser and HttpUser and a bare
geventhttpclient loop, all pulling the same tiny image from a static nginx on loopback.

    /work/venv/bin/python bench/per_request.py            # 3 rounds of 10 s per subject
    /work/venv/bin/python bench/per_request.py --short    # 1 round of 3 s per subject (CI)

Each subject runs in one process of its own with the same number of concurrent users (16) and
issues the same GET sequence per image: ping, manifest (with docker's Accept header), config,
layer. regload's PullUser also parses the manifest and verifies both blobs' digests and sizes.
Subjects alternate round by round and each one's best round counts, so that a burst of load
from elsewhere on a shared machine does not decide the ratio. Printed: requests/s and the
client process's CPU µs per request (test start to stop) of each, and the ratios against
issue 4's targets (regload ≥ 1.5× FastHttpUser, ≥ 5× HttpUser; the bare loop is the floor of
the HTTP client, with no stats at all).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    ACCEPT,
    LOCUSTFILES,
    PYTHON,
    StaticServer,
    header,
    run_locust,
    verdict,
)

TARGET_FAST = 1.5
TARGET_HTTP = 5.0


def bare_loop(url: str, paths: list[str], users: int, seconds: float) -> dict[str, float]:
    """The floor: geventhttpclient alone, ``users`` greenlets repeating the GET sequence."""
    import gevent
    from geventhttpclient import URL, HTTPClient

    client = HTTPClient.from_url(URL(url), concurrency=users)
    cpu = time.process_time()
    accept = {"Accept": ACCEPT}
    counts = [0] * users
    deadline = time.perf_counter() + seconds

    def worker(i: int) -> None:
        n = 0
        while time.perf_counter() < deadline:
            for path in paths:
                response = client.get(path, headers=accept if "/manifests/" in path else None)
                response.read()
                response.release()
                n += 1
        counts[i] = n

    started = time.perf_counter()
    gevent.joinall([gevent.spawn(worker, i) for i in range(users)])
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    client.close()
    n = sum(counts)
    return {"requests": n, "seconds": elapsed, "rps": n / elapsed, "cpu_us": cpu / n * 1e6 if n else 0.0}


def run_bare(url: str, paths: tuple[str, ...], users: int, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [PYTHON, __file__, "--_bare", json.dumps([url, list(paths), users, seconds])],
        capture_output=True,
        text=True,
        timeout=seconds * 3 + 30,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="one round of 3 s per subject (CI smoke run)")
    parser.add_argument("--seconds", type=float, help="run time per subject and round (default 10, --short 3)")
    parser.add_argument("--rounds", type=int, help="rounds; each subject's best counts (default 3, --short 1)")
    parser.add_argument("--users", type=int, default=16, help="concurrent users/greenlets (default 16)")
    parser.add_argument(
        "--only", choices=("regload", "fasthttp", "http", "bare"), action="append", help="run only these"
    )
    parser.add_argument(
        "--regload-path",
        help="also run a PullUser importing regload from this directory (e.g. an export of another commit)",
    )
    parser.add_argument("--_bare", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._bare:
        url, paths, users, seconds = json.loads(args._bare)
        print(json.dumps(bare_loop(url, paths, users, seconds)))
        return 0
    seconds = args.seconds or (3.0 if args.short else 10.0)
    rounds = args.rounds or (1 if args.short else 3)
    subjects = args.only or ["regload", "fasthttp", "http", "bare"]
    if args.regload_path:
        subjects.insert(subjects.index("regload") + 1 if "regload" in subjects else 0, "other")
    results: dict[str, float] = {}
    cpu: dict[str, float] = {}  # client CPU µs per request (test start to stop), lowest round
    ok = True
    with StaticServer() as server:
        image = server.image
        header(f"per-request cost: nginx static image at {server.url}, {args.users} users, {seconds:g} s each")
        env = {"BENCH_PATHS": " ".join(image.paths), "BENCH_ACCEPT": ACCEPT}
        runs = {
            "regload": (
                LOCUSTFILES / "regload_pull.py",
                ["PullUser"],
                ["--pull-image", f"{image.repository}:{image.tag}", "--pull-pool-size", "0"],
            ),
            "fasthttp": (LOCUSTFILES / "fasthttp_pull.py", ["FastPull"], []),
            "other": (
                LOCUSTFILES / "regload_pull.py",
                ["PullUser"],
                ["--pull-image", f"{image.repository}:{image.tag}", "--pull-pool-size", "0"],
            ),
            "http": (LOCUSTFILES / "http_pull.py", ["HttpPull"], []),
        }
        labels = {
            "regload": "regload PullUser",
            "fasthttp": "Locust FastHttpUser",
            "http": "Locust HttpUser",
            "bare": "bare geventhttpclient",
            "other": "PullUser --regload-path",
        }
        for round_ in range(1, rounds + 1):
            if rounds > 1:
                header(f"round {round_}/{rounds}")
            for name in subjects:
                if name == "bare":
                    bare = run_bare(server.url, image.paths, args.users, seconds)
                    rps, cpu_us, note = bare["rps"], bare["cpu_us"], f"({bare['requests']} requests)"
                else:
                    locustfile, classes, extra = runs[name]
                    run_env = {**env, "PYTHONPATH": args.regload_path} if name == "other" else env
                    run = run_locust(locustfile, server.url, args.users, seconds, classes, extra, env=run_env)
                    rps, cpu_us = run.rps, run.cpu_us or 0.0
                    methods = sorted({r["method"] for r in run.stats})
                    note = f"({run.requests} requests, {run.failures} failures, methods {','.join(methods)})"
                    if run.requests == 0 or run.failures or any(m not in ("GET", "PULL") for m in methods):
                        ok = False
                        print(f"  {name}: unexpected run (exit {run.code}):\n{run.output[-2000:]}", file=sys.stderr)
                results[name] = max(results.get(name, 0.0), rps)
                if cpu_us:
                    cpu[name] = min(cpu.get(name, cpu_us), cpu_us)
                print(f"{labels[name]:<24} {rps:>9.0f} req/s {cpu_us:>7.0f} µs CPU/req  {note}", flush=True)
        if rounds > 1:
            header(f"best of {rounds} rounds")
            for name in subjects:
                print(f"{labels[name]:<24} {results[name]:>9.0f} req/s {cpu.get(name, 0):>7.0f} µs CPU/req")
    reg = results.get("regload")
    if reg:
        header("ratios")
        pairs = (("fasthttp", TARGET_FAST), ("http", TARGET_HTTP), ("bare", None), ("other", None))
        for name, target in pairs:
            base = results.get(name)
            if not base:
                continue
            ratio = reg / base
            goal = f"target ≥ {target:g}×: {verdict(ratio, target)}" if target else "the floor"
            if name == "other":
                goal = "this tree / --regload-path"
            line = f"regload / {labels[name]:<22} {ratio:5.2f}× req/s  ({goal})"
            if cpu.get(name) and cpu.get("regload"):
                line += f";  CPU per request: {cpu[name] / cpu['regload']:4.2f}× less"
            print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
