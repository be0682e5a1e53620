"""``--metrics-port`` scraped by a real Prometheus (the Debian package) on loopback, every second:
live during the run, on a master the sums of its workers, and, over the whole run, the same
counts as Locust's own results and a ``histogram_quantile(0.99, …)`` in the bucket of Locust's p99.

The runs start themselves (``--autostart``) and hold their final numbers for a few seconds after
the run time (``--autoquit``) before they quit: Prometheus' last scrapes then see the stats that
Locust writes to its JSON file, and the window of both is the whole run (the counters are
cumulative from the test start, read with ``last_over_time`` once the process is gone). A
headless run quits at once: the last scrape can miss its last second (docs/prometheus.md).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regload.local_registry import free_port
from tests.support.locust_run import SMALL_IMAGES, Locust, Result, headless, run_locust
from tests.support.prometheus import Prometheus, locust_percentile, quantile_range
from tests.support.waiting import wait_until

pytestmark = pytest.mark.locust_run

PULL_IMAGE = '{method="PULL",name="image"}'
P99 = f"histogram_quantile(0.99, sum by (le) (last_over_time(regload_request_duration_seconds_bucket{PULL_IMAGE}[5m])))"


def autostart(host: str, prefix: Path, *args: str, users: int, run_time: str, hold: int) -> list[str]:
    """A run that starts itself, stops after ``run_time`` and quits ``hold`` seconds later (its
    web UI on a free loopback port), writing ``PREFIX.json`` and ``PREFIX_stats.csv``."""
    return [
        *("--autostart", "--autoquit", str(hold), "-u", str(users), "-r", str(users), "-t", run_time),
        *("--web-host", "127.0.0.1", "--web-port", str(free_port())),
        *("--host", host, "--csv", str(prefix), "--json-file", str(prefix)),
        *SMALL_IMAGES,
        *args,
    ]


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def prometheus(tmp_path: Path, metrics_port: int) -> Iterator[Prometheus]:
    p = Prometheus.start(tmp_path / "prometheus", {"regload": [f"127.0.0.1:{metrics_port}"]})
    try:
        yield p
    finally:
        p.close()


def _final(prometheus: Prometheus, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
    """The last scraped value of each series of ``expr`` (the run is over), by ``labels``."""
    return {
        tuple(r["metric"].get(label, "") for label in labels): float(r["value"][1])
        for r in prometheus.query(f"last_over_time({expr}[5m])")
    }


def _check_totals(prometheus: Prometheus, result: Result) -> dict[tuple[str, str], dict[str, Any]]:
    """Every stats row's requests and failures, and the bytes, as Locust's JSON file says."""
    stats = result.json_stats()
    requests = _final(prometheus, "regload_requests_total", "method", "name", "result")
    assert {(m, n) for m, n, _ in requests} == set(stats), (sorted(requests), sorted(stats))
    for (method, name), entry in stats.items():
        assert requests[(method, name, "failure")] == entry["num_failures"], (method, name)
        assert requests[(method, name, "success")] == entry["num_requests"] - entry["num_failures"], (method, name)
    counts = _final(prometheus, "regload_request_duration_seconds_count", "method", "name")
    sums = _final(prometheus, "regload_request_duration_seconds_sum", "method", "name")
    for key, entry in stats.items():
        assert counts[key] == sum(entry["response_times"].values()) == entry["num_requests"], key
        assert sums[key] == pytest.approx(entry["total_response_time"] / 1000), key
    moved = _final(prometheus, "regload_bytes_total", "direction")
    assert moved == {
        ("pulled",): stats[("PULL", "image")]["total_content_length"],
        ("pushed",): stats[("PUSH", "image")]["total_content_length"],
    }
    assert moved[("pulled",)] > 0 and moved[("pushed",)] > 0
    return stats


def test_prometheus_reads_the_run_live_and_its_p99_is_in_locust_s_p99_bucket(
    registry_anon, prometheus, metrics_port, tmp_path
):
    metrics = ("--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.1")
    args = autostart(
        registry_anon.url,
        tmp_path / "run",
        *metrics,
        *("--pull-rate", "10", "PullUser", "PushUser"),
        users=12,  # 6 PullUsers for 10 pulls/s of a few ms: none dropped
        run_time="12s",
        hold=5,
    )
    locust = Locust(args, tmp_path, name="run")
    try:
        prometheus.wait_up("regload", timeout=30)
        # Live: the users and the requests while the run goes on.
        users = wait_until(
            lambda: (u := prometheus.by_label("regload_users", "class")) and sum(u.values()) == 12 and u,
            timeout=30,
            message=lambda: str(prometheus.query("regload_users")),
        )
        assert {name for name, n in users.items() if n} == {"PullUser", "PushUser"}, users
        live = wait_until(
            lambda: prometheus.value(
                f"histogram_quantile(0.99, sum by (le) (rate(regload_request_duration_seconds_bucket{PULL_IMAGE}[5s])))"
            ),
            timeout=30,
            message="no p99 of PULL image over the last 5 s",
        )
        assert 0 < live < 120, live
        started = wait_until(
            lambda: prometheus.value('regload_arrivals_total{kind="PULL",result="started"}'), timeout=30
        )
        assert started > 0
        code = locust.wait(90)
    finally:
        locust.kill()
    result = Result(code, locust.stdout, locust.stderr, tmp_path / "run")
    assert code == 0 and "Traceback" not in result.stderr, result.output[-6000:]
    assert "regload: metrics for Prometheus at http://127.0.0.1:" in result.stderr

    stats = _check_totals(prometheus, result)
    # The users were gone before the last scrapes: the gauge says so.
    assert sum(_final(prometheus, "regload_users", "class").values()) == 0
    [arrivals] = [r for r in json.loads(Path(f"{result.prefix}_arrivals.json").read_text()) if r["operation"] == "PULL"]
    scraped = _final(prometheus, 'regload_arrivals_total{kind="PULL"}', "result")
    assert scraped == {("started",): arrivals["started"], ("dropped",): arrivals["dropped"]}, (scraped, arrivals)
    assert arrivals["started"] >= 60, arrivals

    pull = stats[("PULL", "image")]
    locust_p99 = locust_percentile(pull["response_times"], 0.99)
    assert float(result.row("PULL", "image")["99%"]) == locust_p99  # Locust's own figure, in its CSV
    promql_p99 = prometheus.value(P99)
    assert promql_p99 is not None
    lower, upper = quantile_range(pull["response_times"], 0.99)
    print(
        f"\nPULL image over the whole run ({pull['num_requests']} pulls): PromQL p99 {promql_p99 * 1000:.2f} ms,"
        f" Locust p99 {locust_p99:g} ms; the bucket ({lower * 1000:g}, {upper * 1000:g}] ms"
    )
    # histogram_quantile interpolates inside the bucket that holds the rank: anywhere between its bounds.
    assert lower <= promql_p99 <= upper, (promql_p99, locust_p99, lower, upper)


def test_a_master_shows_the_sums_of_its_workers_and_a_worker_serves_nothing(
    registry_anon, prometheus, metrics_port, tmp_path
):
    master_port = free_port()
    metrics = ("--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.1")
    master_args = autostart(
        registry_anon.url,
        tmp_path / "master",
        *metrics,
        *("--master", "--expect-workers", "2", "--expect-workers-max-wait", "30"),
        *("--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port), "PullUser", "PushUser"),
        users=6,
        run_time="10s",
        hold=7,  # a worker reports every 3 s: its last requests reach the master before the last scrapes
    )
    # The workers have the master's port too: one that listened would find it taken and stop.
    worker_args = ["--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port), *metrics]
    master = Locust(master_args, tmp_path, name="master")
    workers = [Locust(worker_args, tmp_path, name=f"worker{i}") for i in (1, 2)]
    try:
        prometheus.wait_up("regload", timeout=30)
        users = wait_until(
            lambda: (u := prometheus.by_label("regload_users", "class")) and sum(u.values()) == 6 and u,
            timeout=45,
            message=lambda: str(prometheus.query("regload_users")),
        )
        assert {name for name, n in users.items() if n} == {"PullUser", "PushUser"}, users
        code = master.wait(90)
        worker_codes = [w.wait(30) for w in workers]
    finally:
        for process in (master, *workers):
            process.kill()
    result = Result(code, master.stdout, master.stderr, tmp_path / "master")
    assert code == 0 and "Traceback" not in result.stderr, result.output[-6000:]
    assert "2 workers connected" in master.stderr
    assert worker_codes == [0, 0], [w.output[-3000:] for w in workers]
    for worker in workers:
        assert "metrics for Prometheus" not in worker.stderr and "regload: error" not in worker.stderr, worker.output
    assert [t["scrapeUrl"] for t in prometheus.targets("regload")] == [f"http://127.0.0.1:{metrics_port}/metrics"]
    stats = _check_totals(prometheus, result)  # the master's JSON: its workers' sums
    assert stats[("PULL", "image")]["num_requests"] > 0 and stats[("PUSH", "image")]["num_requests"] > 0
    pull = stats[("PULL", "image")]
    locust_p99 = locust_percentile(pull["response_times"], 0.99)
    promql_p99 = prometheus.value(P99)
    assert promql_p99 is not None
    lower, upper = quantile_range(pull["response_times"], 0.99)
    print(f"\ndistributed, PULL image: PromQL p99 {promql_p99 * 1000:.2f} ms, Locust p99 {locust_p99:g} ms")
    assert lower <= promql_p99 <= upper, (promql_p99, locust_p99, lower, upper)


def test_a_metrics_port_in_use_stops_the_run_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = headless(
            None, tmp_path / "run", "--metrics-port", str(port), "--metrics-host", "127.0.0.1", run_time="2s"
        )
        result = run_locust(args, tmp_path, name="run", timeout=60)
    assert result.code == 1, result.output[-4000:]
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        f"regload: error: --metrics-port {port}: cannot listen on 127.0.0.1:{port}: Address already in use"
    ], result.output[-4000:]
    assert "Traceback" not in result.output
    assert "started a local docker-registry" not in result.stderr  # refused before anything started
