"""A real Prometheus (the Debian package ``prometheus``) for the tests: its own process on a free
loopback port, a temporary storage directory, and a configuration scraping the given targets
every second; ``query`` asks its HTTP API.

    prometheus = Prometheus.start(tmp_path / "prometheus", {"regload": ["127.0.0.1:9646"]})
    try:
        prometheus.wait_up("regload", timeout=30)
        [sample] = prometheus.query('sum(regload_users)')
    finally:
        prometheus.close()

A target is ``HOST:PORT`` (scraped at ``/metrics``) or a full ``http://HOST:PORT/PATH`` URL.
The system's Prometheus service is never used: nothing here starts or stops it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from regload.local_registry import free_port
from regload.workload.exposition import cumulative_buckets
from regload.workload.percentiles import locust_percentile as percentile_rule

#: Seconds between two scrapes of every target: a run of a few seconds gets several.
SCRAPE_INTERVAL = 1
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy


def find_prometheus() -> str:
    """The ``prometheus`` binary, or an error saying how to install it."""
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None)
    if found is None:
        raise RuntimeError(
            "no prometheus binary on PATH nor at /usr/bin/prometheus: install the Debian package"
            " (`sudo apt-get install prometheus`, or `./dev setup`)"
        )
    return found


def scrape_config(targets: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """One job per name, each target as ``HOST:PORT`` or a URL (its scheme and path kept)."""
    jobs = []
    for job, addresses in targets.items():
        by_path: dict[tuple[str, str], list[str]] = {}
        for address in addresses:
            parts = urllib.parse.urlsplit(address if "://" in address else f"http://{address}/metrics")
            by_path.setdefault((parts.scheme, parts.path or "/metrics"), []).append(parts.netloc)
        for (scheme, path), netlocs in by_path.items():
            jobs.append(
                {
                    "job_name": job,
                    "scheme": scheme,
                    "metrics_path": path,
                    "static_configs": [{"targets": netlocs}],
                }
            )
    interval = f"{SCRAPE_INTERVAL}s"
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "scrape_configs": jobs,
    }


class Prometheus:
    def __init__(self, process: subprocess.Popen[bytes], url: str, workdir: Path) -> None:
        self.process = process
        self.url = url
        self.workdir = workdir

    @classmethod
    def start(cls, workdir: Path, targets: Mapping[str, Sequence[str]], timeout: float = 30) -> Prometheus:
        """Start it (a port taken meanwhile by someone else: picked again) and wait until it is ready."""
        binary = find_prometheus()
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "prometheus.yml"
        config.write_text(json.dumps(scrape_config(targets), indent=2))  # JSON is YAML
        for attempt in range(3):
            port = free_port()
            log = workdir / f"prometheus-{attempt}.log"
            with open(log, "wb") as out:
                process = subprocess.Popen(
                    [
                        binary,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={workdir / f'data-{attempt}'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                        "--log.level=warn",
                    ],
                    cwd=workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            prometheus = cls(process, f"http://127.0.0.1:{port}", workdir)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    with _OPENER.open(f"{prometheus.url}/-/ready", timeout=2) as response:
                        if response.status == 200:
                            return prometheus
                except (OSError, urllib.error.URLError):
                    pass
                time.sleep(0.1)
            prometheus.close()
            text = log.read_text(errors="replace")
            if "address already in use" not in text:
                raise AssertionError(f"prometheus did not get ready within {timeout:g} s:\n{text[-4000:]}")
        raise AssertionError("prometheus: no free port after 3 attempts")

    def api(self, path: str, **params: Any) -> Any:
        """``GET /api/v1/PATH?params``: its ``data``; an error status fails with Prometheus' words."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with _OPENER.open(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
        if body.get("status") != "success":
            raise AssertionError(f"prometheus {path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result (a vector: ``[{"metric": {...}, "value": [t, "1.5"]}, ...]``)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", **params)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] in ("vector", "matrix") else [data]
        return result

    def value(self, expr: str, at: float | None = None) -> float | None:
        """The one value of a query that returns one series (None: no series)."""
        result = self.query(expr, at)
        if not result:
            return None
        assert len(result) == 1, f"{expr}: {len(result)} series: {result}"
        return float(result[0]["value"][1])

    def by_label(self, expr: str, label: str, at: float | None = None) -> dict[str, float]:
        """A query's values by one label."""
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr, at)}

    def wait_up(self, job: str, timeout: float) -> float:
        """Wait until every target of ``job`` was scraped successfully; the time of the last scrape."""
        deadline = time.monotonic() + timeout
        while True:
            up = self.query(f'up{{job="{job}"}}')
            if up and all(r["value"][1] == "1" for r in up):
                scraped = self.query(f'timestamp(up{{job="{job}"}})')
                return min((float(r["value"][1]) for r in scraped), default=0.0)
            if time.monotonic() > deadline:
                raise AssertionError(f"{job} not scraped successfully within {timeout:g} s: {self.targets(job)}")
            time.sleep(0.2)

    def targets(self, job: str | None = None) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return [t for t in active if job is None or t.get("labels", {}).get("job") == job]

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(10)


def locust_percentile(response_times: Mapping[Any, int], percent: float) -> float:
    """A percentile (0-1) of Locust's ``response_times``, as Locust computes it."""
    return percentile_rule(response_times, sum(response_times.values()), percent)


def quantile_range(response_times: Mapping[Any, int], q: float) -> tuple[float, float]:
    """Where ``histogram_quantile(q, …)`` over regload's buckets of these response times must
    land, in seconds: inside the bucket of Locust's percentile (PromQL interpolates within a
    bucket, its bounds included). One exception: when exactly ``q`` × n requests are at or below a
    lower bucket's bound, PromQL answers that bound (both are then the quantile; Locust takes the
    next recorded time)."""
    buckets = cumulative_buckets({float(ms): n for ms, n in response_times.items()})
    locust_s = locust_percentile(response_times, q) / 1000
    i = next(i for i, (bound, _) in enumerate(buckets) if locust_s <= bound)
    lower, upper = (buckets[i - 1][0] if i else 0.0), buckets[i][0]
    rank = q * buckets[-1][1]  # as PromQL computes it
    exact = [bound for bound, n in buckets[:i] if n == rank]
    return (exact[0] if exact else lower), upper
