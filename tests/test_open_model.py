"""The open model against the real registry, behind the fault proxy adding 150 ms to every
request: arrivals at a set rate, whatever the registry's speed; drops when no user is idle;
``PULL image`` timed from the arrival; ramps, a mixed load, and two workers sharing the rate."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from regload.local_registry import LocalRegistry, free_port
from tests.support.cli import regload
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.locust_run import Locust, Result, headless, run_locust
from tests.support.waiting import wait_until

pytestmark = pytest.mark.locust_run

DELAY = 0.15  # seconds the proxy adds to every request
PULL_REQUESTS = 4  # ping, manifest, config, one layer
POOL = ("open/app:one", "open/app:two")


@pytest.fixture(scope="module")
def slow_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultProxy]:
    """A registry of its own with two one-layer images, reached through a 150 ms delay."""
    storage = tmp_path_factory.mktemp("open-model")
    registry = LocalRegistry(storage_dir=storage / "storage").start()
    try:
        for seed, ref in enumerate(POOL):
            push = regload("push", f"synthetic:layers=1,size=4KiB,seed={seed}", f"{registry.host}/{ref}")
            assert push.code == 0, push.output
        proxy = FaultProxy(registry.url, seed=11, max_connections=512, timeout=30).start()
        proxy.set_faults([Fault("delay", 1.0, seconds=DELAY)])
        try:
            yield proxy
        finally:
            proxy.stop()
    finally:
        registry.stop()


def open_run(proxy: FaultProxy, tmp_path: Path, users: int, seconds: int, *args: str) -> Result:
    pool = [a for ref in POOL for a in ("--pull-image", ref)]
    argv = headless(proxy.url, tmp_path / "run", "--pull-pool-size", "0", *pool, *args, users=users)
    argv[argv.index("-t") + 1] = f"{seconds}s"
    return run_locust(argv, tmp_path, timeout=seconds + 60, name="run")


def arrivals(result: Result) -> dict[str, dict[str, object]]:
    rows = json.loads(Path(f"{result.prefix}_arrivals.json").read_text())
    return {row["operation"]: row for row in rows}


def assert_no_error_logged(result: Result) -> None:
    """A clean stop logs no ERROR line: users released by a stopped schedule end on their own,
    and Locust once met them half gone (``While stopping users, we encountered a user that
    didn't have proper args``)."""
    errors = [line for line in result.stderr.splitlines() if "/ERROR/" in line]
    assert errors == [], errors


def pull_median_ms(result: Result) -> float:
    return float(result.row("PULL", "image")["50%"])


def test_a_rate_the_users_can_serve_starts_every_arrival_timed_from_its_arrival(slow_registry, tmp_path):
    result = open_run(slow_registry, tmp_path, 40, 20, "--pull-rate", "10", "--arrivals", "uniform", "PullUser")
    assert result.code == 0, result.output[-4000:]
    assert_no_error_logged(result)
    pull = arrivals(result)["PULL"]
    assert 184 <= pull["started"] <= 216, pull  # 10/s for 20 s, ±8 %
    assert pull["dropped"] == 0 and ("PULL", "dropped") not in result.stats()
    assert pull["target_rate"] == pytest.approx(10, rel=0.02)
    assert pull["achieved_rate"] == pytest.approx(10, rel=0.08)
    assert pull["lateness_p99_ms"] is not None
    assert pull_median_ms(result) >= PULL_REQUESTS * DELAY * 1000
    assert result.failures() == []
    assert "regload arrivals: PULL target 10/s" in result.stderr
    with open(f"{result.prefix}_arrivals.csv") as f:
        assert f.readline().startswith("Operation,Schedule,Elapsed s,Target rate,Achieved rate")


def test_too_few_users_drop_arrivals_and_count_each_as_a_failure(slow_registry, tmp_path):
    result = open_run(
        slow_registry,
        tmp_path,
        2,
        20,
        *("--pull-rate", "10", "--arrivals", "uniform", "--check-fail-ratio", "0.1", "PullUser"),
    )
    pull = arrivals(result)["PULL"]
    assert 184 <= pull["started"] + pull["dropped"] <= 216, pull
    assert pull["dropped"] >= 80, pull
    stats = result.json_stats()  # exact totals
    dropped, image = stats[("PULL", "dropped")], stats[("PULL", "image")]
    assert dropped["num_requests"] == dropped["num_failures"] == pull["dropped"]  # one failed row per drop
    assert dropped["total_response_time"] == 0  # no latency mixed in
    assert image["num_failures"] == 0 and image["num_requests"] <= pull["started"]
    failures = {(f["Method"], f["Name"]): f["Error"] for f in result.failures()}
    assert failures == {("PULL", "dropped"): "no idle user at the arrival time"}
    # --check-fail-ratio counts the drops: at least 80 of at most 80 + 5 × 120 requests failed.
    assert result.code == 1 and "failure ratio" in result.stderr, result.output[-3000:]


def test_a_ramp_follows_its_stages(slow_registry, tmp_path):
    """0 → 20/s over 6 s, then 20/s for 6 s: 60 + 120 arrivals, each stage within a few percent.
    The run lasts 14 s: the schedule starts once the users are spawned (about a second on a
    busy machine) and must still reach its end."""
    result = open_run(
        slow_registry,
        tmp_path,
        40,
        14,
        *("--rate-stages", "6s:20,6s:20", "--arrivals", "uniform", "PullUser"),
    )
    assert result.code == 0, result.output[-4000:]
    assert_no_error_logged(result)
    pull = arrivals(result)["PULL"]
    assert pull["schedule"] == "6s:20,6s:20"
    assert pull["elapsed"] >= 12, pull
    assert 174 <= pull["started"] <= 186 and pull["dropped"] == 0, pull
    assert pull["target_rate"] == pytest.approx(180 / pull["elapsed"], rel=0.03)
    # Second by second: the ramp's seconds hold 20/6 · (2s+1)/2 arrivals each, then 20 a second.
    per_second = pull["started_per_second"]
    ramp = [round(20 / 6 * (2 * s + 1) / 2) for s in range(6)]  # 2, 5, 8, 12, 15, 18
    assert all(abs(got - want) <= 1 for got, want in zip(per_second[:6], ramp, strict=True)), per_second
    assert sum(per_second[:6]) == pytest.approx(60, abs=2)
    assert all(abs(got - 20) <= 1 for got in per_second[6:11]), per_second


def test_pull_and_push_rates_together(slow_registry, tmp_path):
    result = open_run(
        slow_registry,
        tmp_path,
        30,
        12,
        *("--pull-rate", "8", "--push-rate", "2", "--arrivals", "uniform", "PullUser", "PushUser"),
    )
    assert result.code == 0, result.output[-4000:]
    assert_no_error_logged(result)
    rows = arrivals(result)
    # Each at its own rate (the schedule starts once the users are spawned: a little under 12 s).
    for kind, rate in (("PULL", 8), ("PUSH", 2)):
        row = rows[kind]
        assert row["achieved_rate"] == pytest.approx(rate, rel=0.1) and row["dropped"] == 0, rows
        assert 0.8 * rate * 12 <= row["started"] <= rate * 12 + 1, rows
    # A push makes ~10 requests of 150 ms: those of the last few seconds are still running at the stop.
    pushed = int(result.row("PUSH", "image")["Request Count"])
    assert rows["PUSH"]["started"] - 8 <= pushed <= rows["PUSH"]["started"]


def test_two_workers_reach_the_total_rate_together(slow_registry, tmp_path):
    result = open_run(
        slow_registry,
        tmp_path,
        40,
        15,
        *("--processes", "2", "--pull-rate", "10", "--arrivals", "uniform", "PullUser"),
    )
    assert result.code == 0, result.output[-4000:]
    assert_no_error_logged(result)
    pull = arrivals(result)["PULL"]
    # Each worker schedules half: together 10/s, not 20/s (nor 5/s).
    assert pull["achieved_rate"] == pytest.approx(10, rel=0.1) and pull["dropped"] == 0, pull
    assert 120 <= pull["started"] <= 151, pull
    assert int(result.row("PULL", "image")["Request Count"]) >= 110


def _http(url: str, data: dict[str, str] | None = None) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    with opener.open(url, data=body, timeout=10) as response:
        return json.load(response)


def test_web_ui_takes_the_rate_at_each_run_and_shows_target_achieved_and_drops(slow_registry, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    pool = [a for ref in POOL for a in ("--pull-image", ref)]
    args = ["--host", slow_registry.url, "--web-host", "127.0.0.1", "--web-port", str(port), "--pull-pool-size", "0"]
    locust = Locust([*args, *pool, "--arrivals", "uniform", "PullUser"], tmp_path, name="ui")
    try:
        locust.wait_for_web_ui(port)
        for rate, users in (("5", "10"), ("20", "1")):  # the second: one user cannot keep up
            form = {"user_count": users, "spawn_rate": users, "host": slow_registry.url, "pull_rate": rate}
            assert _http(f"{url}/swarm", form)["success"]

            def shown(rate: str = rate) -> dict | None:
                tables = {t["key"]: t["data"] for t in _http(f"{url}/stats/requests").get("extended_stats", [])}
                rows = [r for r in tables.get("arrivals", []) if r["schedule"] == f"{rate}/s"]
                return rows[0] if rows and rows[0]["started"] >= 10 else None

            row = wait_until(shown, timeout=30, message=f"an Arrivals row for {rate}/s")
            assert row["target"] == rate and float(row["achieved"]) > 0 and row["p99"].endswith("ms")
            # The chart's series: the target of every second, and what started in it.
            [chart] = _http(f"{url}/regload/arrivals.json")["operations"]
            assert chart["operation"] == "PULL" and chart["target"] and chart["achieved"]
            assert set(chart["target"]) == {float(rate)}
            if rate == "20":
                assert wait_until(lambda: (shown() or {}).get("dropped", 0) > 0, timeout=15, message="drops")
            _http(f"{url}/stop", {})
        page = urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{url}/regload/arrivals", timeout=10)
        with page:
            assert b"plotly.min.js" in page.read()  # drawn by Plotly, served from here
            wait_until(lambda: _http(f"{url}/stats/requests")["state"] == "stopped", timeout=30, message="stop")
    finally:
        locust.kill()
