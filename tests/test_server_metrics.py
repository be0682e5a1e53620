"""The registry's side, apart from Locust: exposition text parsed with prometheus_client's parser,
quantiles from bucket deltas as PromQL's histogram_quantile computes them, distribution's,
Harbor's and zot's names, and the server's rows set beside the client's."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from regload.workload.server.compare import ClientSide, client_rows, compare
from regload.workload.server.dialects import ANY_HANDLER, view
from regload.workload.server.quantile import bucket_bounds, delta, histogram_quantile
from regload.workload.server.scrape import parse

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data" / "metrics"
INF = math.inf


def distribution(blob_gets: list[int], manifests: int, cpu: float, rss: float, in_flight: int) -> str:
    """Exposition text with distribution 2.8's names and buckets (.005 … 60 s)."""
    bounds = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "25", "60", "+Inf"]
    lines = ["# TYPE registry_http_request_duration_seconds histogram"]
    for handler, method, counts in (("blob", "get", blob_gets), ("manifest", "get", [manifests] * len(bounds))):
        counts = counts + [counts[-1]] * (len(bounds) - len(counts))
        labels = f'handler="{handler}",method="{method}"'
        for bound, count in zip(bounds, counts, strict=True):
            lines.append(f'registry_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {count}')
        lines.append(
            f'registry_http_request_duration_seconds_count{{handler="{handler}",method="{method}"}} {counts[-1]}'
        )
        lines.append(f'registry_http_request_duration_seconds_sum{{handler="{handler}",method="{method}"}} 1.5')
    lines += [
        "# TYPE registry_http_in_flight_requests gauge",
        f'registry_http_in_flight_requests{{handler="blob"}} {in_flight}',
        'registry_http_in_flight_requests{handler="manifest"} 1',
        "# TYPE registry_storage_action_seconds histogram",
        'registry_storage_action_seconds_bucket{action="Stat",driver="filesystem",le="0.005"} 90',
        'registry_storage_action_seconds_bucket{action="Stat",driver="filesystem",le="+Inf"} 100',
        'registry_storage_action_seconds_count{action="Stat",driver="filesystem"} 100',
        'registry_storage_action_seconds_sum{action="Stat",driver="filesystem"} 0.3',
        "# TYPE process_cpu_seconds_total counter",
        f"process_cpu_seconds_total {cpu}",
        "# TYPE process_resident_memory_bytes gauge",
        f"process_resident_memory_bytes {rss}",
    ]
    return "\n".join(lines) + "\n"


def test_histogram_quantile_interpolates_as_promql_does():
    buckets = [(0.1, 50.0), (0.2, 90.0), (0.5, 100.0), (INF, 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.05)  # the first bucket starts at 0
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.15)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.2 + 0.3 * 9 / 10)
    assert histogram_quantile(0.99, [(0.1, 0.0), (1.0, 5.0), (INF, 10.0)]) == 1.0  # in +Inf: the top bound
    assert histogram_quantile(0.5, [(0.1, 0.0), (INF, 0.0)]) is None
    # What the histogram knows of a quantile: the bucket it lies in.
    assert bucket_bounds(0.5, buckets) == (0.0, 0.1) and bucket_bounds(0.7, buckets) == (0.1, 0.2)
    assert bucket_bounds(0.99, [(0.1, 0.0), (1.0, 5.0), (INF, 10.0)]) == (1.0, INF)


def test_bucket_deltas_and_a_restarted_registry():
    assert delta([(0.1, 15.0), (INF, 20.0)], [(0.1, 10.0), (INF, 12.0)]) == [(0.1, 5.0), (INF, 8.0)]
    assert delta([(0.1, 3.0), (INF, 4.0)], [(0.1, 10.0), (INF, 12.0)]) == [(0.1, 3.0), (INF, 4.0)]


def test_distribution_over_a_run_beside_the_client():
    before = view(parse(distribution([10, 10], 5, cpu=1.0, rss=2e7, in_flight=0), at=0.0))
    middle = view(parse(distribution([10, 60, 100, 110], 40, cpu=4.0, rss=9e7, in_flight=7), at=10.0))
    after = view(parse(distribution([10, 110, 200, 210], 105, cpu=5.0, rss=5e7, in_flight=2), at=20.0))
    assert before.dialect == "distribution" and after.in_flight == 3 and after.storage["Stat"].count == 100
    known = [("GET", "/v2/<name>/blobs/<digest>"), ("GET", "/v2/<name>/manifests/<reference>"), ("PULL", "image")]
    asked = []

    def client(rows):
        asked.append(rows)
        return ClientSide(200, 14.0, 30.0) if rows[0][1].endswith("<digest>") else ClientSide(60, 3.0, 9.0)

    report = compare("http://127.0.0.1:5001/metrics", [before, middle, after], client, known)
    blob, manifest = report.endpoints
    assert (blob.handler, blob.method, blob.client_rows) == ("blob", "get", ("GET /v2/<name>/blobs/<digest>",))
    # 200 blob GETs in the run: 100 in 5-10 ms, 90 in 10-25 ms, 10 in 25-50 ms.
    assert blob.server_requests == 200 and blob.server_p50_ms == pytest.approx(10.0)
    assert blob.server_p50_range_ms == (5.0, 10.0)
    assert blob.server_p99_ms == pytest.approx(25 + 25 * 8 / 10)
    assert blob.client_requests == 200 and blob.note == "" and blob.p99_gap_ms == pytest.approx(30 - 45.0)
    assert manifest.server_requests == 100 and manifest.client_requests == 60
    assert "the registry counted 100 requests, the client 60 (40% apart)" in manifest.note
    p = report.process
    assert (p.cpu_cores_avg, p.cpu_cores_max, p.rss_max_bytes, p.in_flight_max) == (0.2, 0.3, 9e7, 8)
    assert report.storage_p99_ms == {"Stat": None}  # no storage action between the first and the last scrape
    assert any("start at 5 ms" in line for line in report.blind_spots)


def test_harbor_summaries_are_marked_and_matched_by_operation():
    first = view(parse((DATA / "harbor_core.txt").read_text(), at=0.0))
    assert first.dialect == "harbor" and first.in_flight == 4 and first.cpu_seconds == 52.5
    zero = view(parse("", at=-1.0))
    known = [("GET", "/v2/<name>/manifests/<reference>"), ("GET", "/v2/<name>/blobs/<digest>")]
    report = compare("http://harbor/metrics", [zero, first], lambda rows: ClientSide(1000, 15.0, 95.0), known)
    rows = {r.handler: r for r in report.endpoints}
    manifest = rows["GetManifest"]
    assert manifest.client_rows == ("GET /v2/<name>/manifests/<reference>",)
    assert (manifest.server_requests, manifest.server_p50_ms, manifest.server_p99_ms) == (1000, 12.0, 87.0)
    assert manifest.quantiles_from == "summary" and rows["ListProjects"].client_rows == ()
    assert any("cannot be merged across replicas" in line for line in report.blind_spots)


def test_zot_times_by_method_and_its_coarse_buckets_are_said():
    scraped = view(parse((DATA / "zot.txt").read_text(), at=5.0))
    assert scraped.dialect == "zot" and set(scraped.requests) == {(ANY_HANDLER, "get")}
    known = [("GET", "/v2/<name>/blobs/<digest>"), ("GET", "/v2/<name>/manifests/<reference>"), ("PUT", "/v2/x")]
    assert client_rows("zot", ANY_HANDLER, "get", known) == known[:2]
    report = compare("http://zot/metrics", [view(parse("", at=0.0)), scraped], lambda rows: None, known)
    [row] = report.endpoints
    assert row.server_requests == 1000 and row.server_p50_ms == pytest.approx(50 * 500 / 900, rel=1e-3)
    assert report.storage_p99_ms["lock RW"] == pytest.approx(10 + 90 * 1.5 / 2)  # rank 49.5 of 50, in 10-100 ms
    assert any("coarse buckets" in line for line in report.blind_spots)


def test_distributions_handlers_map_to_regloads_rows():
    known = [
        ("POST", "/v2/<name>/blobs/uploads/"),
        ("POST", "/v2/<name>/blobs/uploads/?mount=<digest>&from=<other>"),
        ("PATCH", "/v2/<name>/blobs/uploads/<session>"),
        ("PUT", "/v2/<name>/blobs/uploads/<session>?digest=<digest>"),
        ("PUT", "/v2/<name>/manifests/<reference>"),
        ("GET", "/v2/"),
    ]
    assert client_rows("distribution", "blob_upload", "post", known) == known[:2]
    assert client_rows("distribution", "blob_upload_chunk", "patch", known) == [known[2]]
    assert client_rows("distribution", "blob_upload_chunk", "put", known) == [known[3]]
    assert client_rows("distribution", "manifest", "put", known) == [known[4]]
    assert client_rows("distribution", "base", "get", known) == [known[5]]


def test_any_process_still_gives_its_cpu_and_memory():
    text = "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}\n"
    views = [view(parse(text.format(cpu), at=t)) for t, cpu in ((0.0, 1.0), (2.0, 2.0))]
    report = compare("http://x/metrics", views, lambda rows: None, [])
    assert report.dialect == "process" and report.endpoints == () and report.process.cpu_cores_avg == 0.5
    assert any("only the process's CPU and memory" in line for line in report.blind_spots)


def test_malformed_exposition_text_is_a_value_error():
    with pytest.raises(ValueError):
        parse("registry_http_requests_total{handler=\n", at=0.0)


def test_redirected_blob_gets_are_a_blind_spot_said_out_loud():
    def scraped(redirects: int, at: float):
        counter = f'registry_http_requests_total{{code="307",handler="blob",method="get"}} {redirects}\n'
        text = "# TYPE registry_http_requests_total counter\n" + counter
        return view(parse(text + distribution([1, 2], 1, cpu=1.0, rss=1e7, in_flight=0), at=at))

    before, after = scraped(3, 0.0), scraped(40, 5.0)
    assert after.redirects == 40
    report = compare("http://x/metrics", [before, after], lambda rows: None, [])
    assert any("covers only the redirect" in line for line in report.blind_spots)
    steady = compare("http://x/metrics", [after, after], lambda rows: None, [])
    assert not any("redirect" in line for line in steady.blind_spots)
