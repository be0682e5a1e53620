"""The registry's side beside the client's, against a real docker-registry with its debug
Prometheus endpoint: a mixed run whose server and client counts agree per matched endpoint;
100 ms added between them shows in the client's p99 and not in the server's, and the report
says where the time went; a capacity step carries the registry's CPU; the self-contained HTML
report. The charts in a browser: tests/test_locust_ui.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regload.local_registry import LocalRegistry, RegistryConfig
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.locust_run import Result, headless, run_locust

pytestmark = pytest.mark.locust_run
SECRET = "s3cret-scrape-token"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    local = LocalRegistry(config=RegistryConfig(metrics=True), storage_dir=tmp_path_factory.mktemp("metrics"))
    local.start()
    try:
        yield local
    finally:
        local.stop()


def registry_json(result: Result) -> list[dict[str, Any]]:
    path = Path(f"{result.prefix}_registry.json")
    assert path.exists(), result.output[-4000:]
    reports: list[dict[str, Any]] = json.loads(path.read_text())
    return reports


def test_a_mixed_run_agrees_with_the_registrys_own_counts(registry, tmp_path):
    args = headless(registry.url, tmp_path / "run", "--registry-metrics", registry.metrics_url, users=6, run_time="8s")
    result = run_locust([*args, "PullUser", "PushUser"], tmp_path, timeout=90, name="run")
    assert result.code == 0, result.output[-4000:]
    [report] = registry_json(result)
    assert report["dialect"] == "distribution" and report["source"] == registry.metrics_url
    endpoints = {(e["handler"], e["method"]): e for e in report["endpoints"]}
    for key in (("blob", "get"), ("manifest", "get"), ("blob_upload", "post"), ("manifest", "put"), ("base", "get")):
        row = endpoints[key]
        assert row["client_requests"], row
        assert abs(row["server_requests"] - row["client_requests"]) <= 0.05 * row["client_requests"], row
        # The server's p50 lies in a bucket whose lower bound is not above the client's p50.
        assert row["server_p50_range_ms"][0] <= row["client_p50_ms"], row
        assert row["note"] == ""
    process = report["process"]
    assert process["cpu_cores_avg"] > 0 and process["cpu_cores_max"] >= process["cpu_cores_avg"]
    assert process["rss_max_bytes"] > 1 << 20 and process["in_flight_max"] >= 0
    assert report["storage_p99_ms"] and any("start at 5 ms" in s for s in report["blind_spots"])
    lines = [line for line in result.stderr.splitlines() if line.startswith(("regload registry:", "  "))]
    assert any("registry process: CPU" in line for line in lines), result.stderr[-3000:]
    csv_rows = Path(f"{result.prefix}_registry.csv").read_text().splitlines()
    assert csv_rows[0].startswith("source,handler,method,client_row") and len(csv_rows) == len(endpoints) + 1
    # The run over time, self-contained: plotly.js inside, no script from elsewhere.
    page = Path(f"{result.prefix}_report.html").read_text()
    assert "Plotly.newPlot" in page and "registry blob get" in page and "client PULL image" in page
    assert "<script src=" not in page


def test_a_delay_between_client_and_registry_is_put_between_them(registry, tmp_path):
    # Credentials in the metrics URL are sent (in a header) and never shown.
    metrics = registry.metrics_url.replace("http://", f"http://scraper:{SECRET}@")
    with FaultProxy(registry.url, seed=3) as proxy:
        proxy.set_faults([Fault("delay", 1.0, method="GET", path=r"/blobs/sha256:", seconds=0.1)])
        args = headless(proxy.url, tmp_path / "run", "--registry-metrics", metrics, users=4, run_time="6s")
        result = run_locust([*args, "PullUser"], tmp_path, timeout=90, name="run")
    assert result.code == 0, result.output[-4000:]
    written = [p.read_text(errors="replace") for p in tmp_path.glob("run*") if p.is_file()]
    assert all(SECRET not in text for text in [result.stdout, result.stderr, *written])
    [report] = registry_json(result)
    blob = next(e for e in report["endpoints"] if (e["handler"], e["method"]) == ("blob", "get"))
    assert blob["client_p99_ms"] >= 100 and blob["server_p99_ms"] < 50, blob
    assert blob["p99_gap_ms"] >= 80, blob
    line = next(line for line in result.stderr.splitlines() if "where the time went" in line)
    assert "GET /v2/<name>/blobs/<digest>" in line and "spent between them" in line


def test_a_capacity_step_carries_the_registrys_cpu(registry, tmp_path):
    args = headless(registry.url, tmp_path / "run", "--registry-metrics", registry.metrics_url, users=4, run_time="1m")
    args += ["--find-capacity", "pull", "--capacity-hold", "3s", "--capacity-settle", "1s"]
    args += ["--check-percentile", "PULL image:p99<1", "PullUser"]  # no pull takes under 1 ms: the start fails
    result = run_locust(args, tmp_path, timeout=90, name="run")
    assert result.code == 1, result.output[-4000:]
    [step] = json.loads(Path(f"{result.prefix}_capacity.json").read_text())["steps"]
    [side] = step["registry"].values()
    assert side["cpu_cores"] is not None and side["in_flight_max"] is not None
    assert "registry CPU" in " ".join(step["reasons"]), step
