"""regload's metrics for Prometheus, without Locust: Locust's rounded response times as histogram
buckets (a percentile and ``histogram_quantile`` land in the same bucket), the metric families
a scrape shows in both exposition formats, and the ``--metrics-port``/``--metrics-host`` values."""

from __future__ import annotations

import math
from argparse import Namespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from regload.errors import UsageError
from regload.options import groups as g
from regload.workload.exposition import BUCKETS_MS, Arrivals, CapacityStep, Row, Snapshot, cumulative_buckets, families
from regload.workload.server.quantile import histogram_quantile
from tests.support.prometheus import locust_percentile, quantile_range

pytestmark = pytest.mark.unit

INF = math.inf


class _Collector:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self):
        return families(self.snapshot)


def _registry(snapshot: Snapshot) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(_Collector(snapshot))
    return registry


def _samples(text: str, parse=text_string_to_metric_families) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in parse(text) for s in family.samples}


def test_buckets_are_cumulative_with_le_inclusive_and_inf_last():
    times = {0: 2, 1: 3, 2: 1, 3: 1, 100: 4, 110: 1, 120_000: 1, 130_000: 2}
    buckets = dict(cumulative_buckets(times))
    assert list(buckets)[0] == 0.001 and list(buckets)[-1] == INF and len(buckets) == len(BUCKETS_MS) + 1
    assert buckets[0.001] == 5  # 0 and 1 ms: le is inclusive
    assert buckets[0.0025] == 6 and buckets[0.005] == 7
    assert buckets[0.05] == 7 and buckets[0.1] == 11 and buckets[0.25] == 12
    assert buckets[120.0] == 13 and buckets[INF] == 15 == sum(times.values())
    assert all(a <= b for a, b in zip(list(buckets.values()), list(buckets.values())[1:], strict=False))


def test_no_request_gives_empty_buckets():
    assert [n for _, n in cumulative_buckets({})] == [0] * (len(BUCKETS_MS) + 1)


# Locust's rounded keys: whole ms below 100, then two significant digits.
_ROUNDED = st.one_of(
    st.integers(0, 99),
    st.integers(10, 99).map(lambda n: n * 10),
    st.integers(10, 99).map(lambda n: n * 100),
    st.integers(10, 200).map(lambda n: n * 1000),
)


@given(st.dictionaries(_ROUNDED, st.integers(1, 50), min_size=1, max_size=40), st.sampled_from([0.5, 0.9, 0.99]))
def test_histogram_quantile_lands_in_the_bucket_of_locust_s_percentile(times, q):
    """What the issue calls consistent: PromQL interpolates inside a bucket, so its quantile is
    anywhere between the bucket's bounds; the bucket is the one holding Locust's percentile (or,
    when exactly q × n requests are at or below a lower bound, that bound: ``quantile_range``)."""
    promql = histogram_quantile(q, cumulative_buckets(times))
    lower, upper = quantile_range(times, q)
    assert promql is not None and lower <= promql <= upper, (locust_percentile(times, q), promql, lower, upper)
    if math.isinf(upper):  # beyond the last bound: PromQL answers the highest finite bound
        assert promql == BUCKETS_MS[-1] / 1000


def test_a_rank_on_a_bucket_bound_is_that_bound():
    times = {0: 1, 3: 1}  # the median: Locust takes 3 ms, PromQL the top of the first bucket
    assert locust_percentile(times, 0.5) == 3
    assert histogram_quantile(0.5, cumulative_buckets(times)) == 0.001 == quantile_range(times, 0.5)[0]


SNAPSHOT = Snapshot(
    rows=(
        Row("PULL", "image", {3: 5, 40: 4, 2600: 1}, 2_780.5, 10, 1),
        Row("GET", "/v2/[name]/blobs/[digest]", {1: 20}, 14.0, 20, 0),
    ),
    bytes={"pulled": 655_360, "pushed": 0},
    arrivals=(Arrivals("PULL", 9, 1),),
    users={"PullUser": 3, "PushUser": 1},
    capacity=CapacityStep(2, {"PULL": 8.0}, 4.0),
)


@pytest.mark.parametrize(
    ("generate", "parse"),
    [(generate_latest, text_string_to_metric_families), (generate_openmetrics, parse_openmetrics)],
    ids=["prometheus-text", "openmetrics"],
)
def test_a_scrape_shows_every_metric_under_its_interface_name(generate, parse):
    text = generate(_registry(SNAPSHOT)).decode()
    samples = _samples(text, parse)
    pull = (("method", "PULL"), ("name", "image"))
    assert samples[("regload_request_duration_seconds_bucket", (("le", "0.005"), *pull))] == 5
    assert samples[("regload_request_duration_seconds_bucket", (("le", "0.05"), *pull))] == 9
    assert samples[("regload_request_duration_seconds_bucket", (("le", "+Inf"), *pull))] == 10
    assert samples[("regload_request_duration_seconds_count", pull)] == 10
    assert samples[("regload_request_duration_seconds_sum", pull)] == pytest.approx(2.7805)
    assert samples[("regload_requests_total", (*pull, ("result", "success")))] == 9
    assert samples[("regload_requests_total", (*pull, ("result", "failure")))] == 1
    blob = (("method", "GET"), ("name", "/v2/[name]/blobs/[digest]"), ("result", "success"))
    assert samples[("regload_requests_total", blob)] == 20
    assert samples[("regload_bytes_total", (("direction", "pulled"),))] == 655_360
    assert samples[("regload_bytes_total", (("direction", "pushed"),))] == 0
    assert samples[("regload_arrivals_total", (("kind", "PULL"), ("result", "started")))] == 9
    assert samples[("regload_arrivals_total", (("kind", "PULL"), ("result", "dropped")))] == 1
    assert samples[("regload_users", (("class", "PullUser"),))] == 3
    assert samples[("regload_capacity_step", ())] == 2
    assert samples[("regload_capacity_rate", (("kind", "PULL"),))] == 8
    assert samples[("regload_capacity_best_rate", ())] == 4
    assert "# TYPE regload_request_duration_seconds histogram" in text
    assert "# TYPE regload_requests counter" in text or "# TYPE regload_requests_total counter" in text


def test_no_capacity_search_no_capacity_metrics_and_no_rows_no_series():
    samples = _samples(generate_latest(_registry(Snapshot())).decode())
    assert not any(name.startswith("regload_capacity") for name, _ in samples)
    assert not any(name.startswith("regload_request") for name, _ in samples)
    assert {labels for name, labels in samples if name == "regload_bytes_total"} == {
        (("direction", "pulled"),),
        (("direction", "pushed"),),
    }


def test_metrics_options():
    assert g.exposition(Namespace()) == g.Exposition("0.0.0.0", None)  # off unless a port is given
    assert g.exposition(Namespace(metrics_port="9646")) == g.Exposition("0.0.0.0", 9646)
    assert g.exposition(Namespace(metrics_port="9646", metrics_host="127.0.0.1")).host == "127.0.0.1"
    assert g.exposition(Namespace(metrics_port=" ")).port is None  # the web form posts empty fields
    for bad in ("0", "65536", "http", "-1"):
        with pytest.raises(UsageError, match="--metrics-port"):
            g.exposition(Namespace(metrics_port=bad))
