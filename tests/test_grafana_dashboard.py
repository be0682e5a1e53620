"""The Grafana dashboard (``deploy/grafana/regload.json``): well formed for Grafana (one data source
variable, unique panel ids, a grid that holds), and every query of every panel returns series
from a real Prometheus that scrapes a running regload (``--metrics-port``, with a capacity
search, so that every regload metric exists) and the registry it loads (distribution's metrics)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regload.local_registry import LocalRegistry, RegistryConfig, free_port
from tests.support.locust_run import Locust, headless
from tests.support.prometheus import Prometheus
from tests.support.waiting import wait_until

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "regload.json"
#: What Grafana puts in place of the dashboard's variables, as the test's Prometheus names things.
VARIABLES = {"$__rate_interval": "30s", "$job": "regload", "$registry_job": "registry"}
REGLOAD_METRICS = (
    "regload_request_duration_seconds",
    "regload_requests_total",
    "regload_bytes_total",
    "regload_arrivals_total",
    "regload_users",
    "regload_capacity_step",
    "regload_capacity_rate",
)


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def _queries() -> list[tuple[str, str]]:
    """(panel title and refId, the query with the variables in place) of every panel's target."""
    out = []
    for panel in _panels():
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in sorted(VARIABLES.items(), key=lambda kv: -len(kv[0])):
                expr = expr.replace(name, value)
            out.append((f"{panel['title']} [{target['refId']}]", expr))
    return out


@pytest.mark.unit
def test_the_dashboard_is_well_formed_for_grafana():
    board = _dashboard()
    assert board["schemaVersion"] >= 36 and board["uid"] == "regload" and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        assert panel["targets"] and panel["description"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}" and target["expr"].strip()
            used = set(re.findall(r"\$\w+", target["expr"]))
            assert used <= set(VARIABLES), (panel["title"], used)
    exprs = " ".join(expr for _, expr in _queries())
    for name in REGLOAD_METRICS:
        assert name in exprs, f"no panel shows {name}"
    for name in (
        "registry_http_request_duration_seconds",
        "registry_http_in_flight_requests",
        "process_cpu_seconds_total",
    ):
        assert name in exprs, f"no panel shows the registry's {name}"


@pytest.fixture
def registry() -> Iterator[LocalRegistry]:
    local = LocalRegistry(config=RegistryConfig(metrics=True)).start()
    try:
        yield local
    finally:
        local.stop()


@pytest.mark.locust_run
def test_every_panel_s_query_returns_series_from_prometheus(registry, tmp_path):
    metrics_port = free_port()
    assert registry.metrics_url is not None
    prometheus = Prometheus.start(
        tmp_path / "prometheus", {"regload": [f"127.0.0.1:{metrics_port}"], "registry": [registry.metrics_url]}
    )
    search = ("--find-capacity", "pull", "--capacity-start", "4", "--capacity-hold", "4s", "--capacity-settle", "1s")
    args = headless(
        registry.url,
        tmp_path / "run",
        *("--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.1"),
        *search,
        *("--check-percentile", "PULL image:p99<5000", "PullUser", "PushUser"),
        users=8,
        run_time="90s",
    )
    locust = Locust(args, tmp_path, name="run")
    try:
        prometheus.wait_up("regload", timeout=30)
        prometheus.wait_up("registry", timeout=30)
        # A step passed (every capacity gauge exists) and a few scrapes of a busy registry.
        wait_until(
            lambda: prometheus.query("regload_capacity_best_rate"),
            timeout=45,
            message=lambda: locust.output[-3000:],
        )
        empty = []
        for title, expr in _queries():
            try:
                wait_until(lambda expr=expr: prometheus.query(expr), timeout=15, interval=0.5)
            except AssertionError:
                empty.append(f"{title}: {expr}")
        assert not empty, "panels without series:\n" + "\n".join(empty)
        jobs = {
            name: prometheus.api("label/job/values", **{"match[]": name})
            for name in ("regload_bytes_total", "registry_http_in_flight_requests")
        }
        assert jobs == {"regload_bytes_total": ["regload"], "registry_http_in_flight_requests": ["registry"]}
        assert locust.process.poll() is None, "the run ended before every query was asked"
    finally:
        locust.kill()
        prometheus.close()
