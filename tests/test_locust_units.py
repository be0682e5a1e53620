"""Unit tests of the Locust layer's pieces: options, failure causes, checks, throughput."""

import random
from types import SimpleNamespace

import pytest

from regload.errors import DigestMismatch, RegistryError, RegloadError, RequestTimeout, TransportError, UsageError
from regload.locust.observer import LocustObserver, failure_cause
from regload.locust.options import add_arguments, settings_from
from regload.locust.thresholds import PercentileCheck, breaches
from regload.locust.throughput import throughput
from regload.locust.web_secrets import SECRET_OPTIONS
from regload.workload.popularity import Zipf
from regload.workload.sizes import PRESETS, Fixed, LogNormal, Uniform

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "error, cause",
    [
        (RegistryError("GET /v2/<name>/blobs/<digest>", 503, None), "HTTP 503"),
        (RegistryError("GET /v2/", 404, "NAME_UNKNOWN", "repository name not known"), "HTTP 404 NAME_UNKNOWN"),
        (DigestMismatch("blob sha256:0123456789ab: content has digest sha256:ba9876543210"), "digest mismatch"),
        (RequestTimeout("GET /v2/ to 127.0.0.1:5000: read timed out after 1s"), "timeout"),
        (TransportError("GET /v2/ to 127.0.0.1:5000: connection refused"), "connection error: connection refused"),
        (
            TransportError("GET /v2/<name>/blobs/<digest> to h:1: connection closed with 1234 body bytes missing"),
            "connection error: connection closed with N body bytes missing",
        ),
    ],
)
def test_failure_causes_are_bounded(error, cause):
    assert failure_cause(error) == cause
    assert "sha256" not in failure_cause(error)


def test_locust_names_a_failure_by_its_cause_alone():
    """Locust's failures table and CSV show ``repr(exception)`` (``StatsError.parse_error``; not
    imported here: importing locust monkey-patches the test process): the cause, not
    ``CauseError('…')``; a plain RegloadError shows what went wrong, not its class name. The
    Locust runs of test_locust.py read the same words back from its failures CSV."""
    fired = []
    observer = LocustObserver(SimpleNamespace(request=SimpleNamespace(fire=lambda **kw: fired.append(kw))))
    observer.on_request("GET /v2/", "GET", 0.0, None, 0, TransportError("GET /v2/ to h:1: connection refused"))
    observer.operation("PULL", 0.0, 0, TransportError("GET /v2/ to h:1: connection refused"))
    observer.operation("PUSH", 0.0, 0, RegloadError("push h:1/r:t: the source has no layers"))
    names = [repr(f["exception"]) for f in fired]
    assert names == ["connection error: connection refused"] * 2 + ["the source has no layers"]


def test_observer_splits_names_and_reports_causes():
    fired = []
    events = SimpleNamespace(request=SimpleNamespace(fire=lambda **kw: fired.append(kw)))
    observer = LocustObserver(events)
    observer.on_request("GET /v2/<name>/blobs/<digest>", "GET", 0.25, 200, 1000, None)
    observer.on_request("GET token", "GET", 0.01, 401, 0, RegistryError("GET token", 401, "UNAUTHORIZED"))
    observer.operation("PULL", 1.5, 5000, None)
    assert [(f["request_type"], f["name"]) for f in fired] == [
        ("GET", "/v2/<name>/blobs/<digest>"),
        ("GET", "token"),
        ("PULL", "image"),
    ]
    assert fired[0]["response_time"] == 250.0 and fired[0]["response_length"] == 1000 and fired[0]["exception"] is None
    assert str(fired[1]["exception"]) == "HTTP 401 UNAUTHORIZED"


def test_layer_size_and_popularity_options(tmp_path):
    """Every syntax of regload.workload.sizes reaches the settings through both layer-size options (the
    syntaxes themselves are tested in tests/test_sizes.py), and --pull-popularity through its own."""
    rng = random.Random(1)
    s = settings_from(None)
    assert s.images.layer_size == s.pool.layer_size == Fixed(1 << 20) and str(s.pool.popularity) == "uniform"
    table = tmp_path / "sizes.txt"
    table.write_text("0 1KB\n65 1MB\n100 10MB\n")
    for text, expected in [
        ("10MiB", Fixed(10 << 20)),
        ("1KiB-4KiB", Uniform(1024, 4096)),
        ("lognormal:median=4MB,p90=63MB,max=1GiB", LogNormal(4_000_000, 63_000_000, 1 << 30)),
        ("dockerhub-2019", PRESETS["dockerhub-2019"]),
        ("ibm-fast18", PRESETS["ibm-fast18"]),
    ]:
        s = settings_from(SimpleNamespace(push_layer_size=text, pull_pool_layer_size=text))
        assert s.images.layer_size == s.pool.layer_size == expected, text
    s = settings_from(SimpleNamespace(push_layer_size=f"empirical:{table}", pull_popularity="zipf:1.1"))
    assert s.images.layer_size.quantile(0.65) == 1_000_000 and 1000 <= s.images.layer_size.sample(rng) <= 10**7
    assert s.pool.popularity == Zipf(1.1)
    spread = settings_from(SimpleNamespace(push_layer_size="1KiB-4KiB")).images.layer_size
    samples = {spread.sample(rng) for _ in range(200)}
    assert min(samples) >= 1024 and max(samples) <= 4096 and len(samples) > 50
    for bad in (
        {"push_layer_size": "4KiB-1KiB"},
        {"pull_pool_layer_size": "lognormal:median=4MB"},
        {"pull_pool_layer_size": f"empirical:{tmp_path / 'missing'}"},
        {"pull_popularity": "zipf:0"},
    ):
        with pytest.raises(UsageError, match="--p"):
            settings_from(SimpleNamespace(**bad))


def test_settings_defaults_and_validation():
    s = settings_from(None)
    assert (s.images.repos, s.push.upload_mode, s.token_cache, s.pull.verify) == (4, "streamed", "shared", True)
    assert s.repository(5) == "regload/load-1"
    assert "hunter2" not in repr(settings_from(SimpleNamespace(registry_password="hunter2")))
    with pytest.raises(UsageError):
        settings_from(SimpleNamespace(repos=0))
    with pytest.raises(UsageError):
        settings_from(SimpleNamespace(push_layer_size="lots"))


class Entry:
    def __init__(self, num, fails, length, p50, rps=2.0):
        self.num_requests, self.num_failures, self.total_content_length = num, fails, length
        self.current_rps, self.avg_content_length = rps, length / max(num, 1)
        self._p = p50

    def get_response_time_percentile(self, q):
        return self._p * (2 if q > 0.5 else 1)


def fake_stats(fail_ratio=0.0):
    entries = {("image", "PULL"): Entry(10, 0, 10 << 20, 100.0)}
    total = SimpleNamespace(fail_ratio=fail_ratio, start_time=1000.0, last_request_timestamp=1010.0)
    return SimpleNamespace(entries=entries, total=total)


def test_percentile_checks():
    check = PercentileCheck.parse("PULL image:95<150")
    assert (check.request_type, check.name, check.percentile, check.limit_ms) == ("PULL", "image", 95.0, 150.0)
    assert PercentileCheck.parse("GET /v2/<name>/blobs/<digest>:p99<500ms").name == "/v2/<name>/blobs/<digest>"
    for bad in ("PULL image", "PULL image:95", "image:95<1", "PULL image:0<5", "PULL image:101<5"):
        with pytest.raises(UsageError):
            PercentileCheck.parse(bad)
    stats = fake_stats()
    assert breaches(stats, None, [PercentileCheck.parse("PULL image:50<150")]) == []
    [line] = breaches(stats, None, [check])
    assert "p95 is 200 ms, above 150 ms" in line
    [line] = breaches(stats, None, [PercentileCheck.parse("PUSH image:50<1")])
    assert "no requests" in line
    # The fail ratio is over image operations when there are any, else over all requests.
    stats = fake_stats(0.5)
    assert not breaches(stats, 0.01, [])
    stats.entries[("image", "PULL")].num_failures = 1
    [line] = breaches(stats, 0.01, [])
    assert "image operation failure ratio 0.1000" in line
    del stats.entries[("image", "PULL")]
    assert breaches(stats, 0.4, []) and not breaches(fake_stats(0.005), 0.01, [])


def test_throughput_from_stats():
    rows = {r.operation: r for r in throughput(fake_stats(), now=1500.0)}  # stopped at 1010
    assert rows["PULL"].bytes == 10 << 20
    assert rows["PULL"].average_bps == pytest.approx((10 << 20) / 10)
    assert rows["PULL"].current_bps == pytest.approx(2.0 * (1 << 20))
    assert rows["PUSH"].images == 0 and rows["PUSH"].average_bps == 0


def test_every_secret_option_is_kept_out_of_the_web_ui():
    """web_secrets blanks exactly the options added with is_secret=True."""
    secret = []

    class Parser:
        def add_argument(self, *names, **kwargs):
            if kwargs.get("is_secret"):
                secret.append(kwargs.get("dest") or names[0].lstrip("-").replace("-", "_"))

    add_arguments(Parser())
    assert sorted(secret) == sorted(SECRET_OPTIONS) == ["registry_password"]


def test_retry_options_reach_the_settings_and_bad_values_are_refused():
    settings = settings_from(SimpleNamespace(retries=3, retry_backoff=0.5, retry_max_wait=4.0, ignore_retry_after=True))
    retry = settings.client.retry
    assert (retry.retries, retry.backoff, retry.max_wait) == (3, 0.5, 4.0)
    assert not retry.honour_retry_after
    assert settings_from(None).client.retry.retries == 0
    for bad in ({"retries": -1}, {"retries": 1000}, {"retry_backoff": float("nan")}, {"retry_max_wait": -2.0}):
        with pytest.raises(UsageError):
            settings_from(SimpleNamespace(**bad))
