"""A storm's numbers and options without a registry: completion, pulls by nearest rank, the
upstream's amplification off two scrapes, and the options' one-line errors. The storms
themselves, against real registries: tests/test_storms.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from regload.errors import UsageError
from regload.options import groups as g
from regload.workload.server.dialects import RequestSeries, ServerView
from regload.workload.server.scrape import Histogram
from regload.workload.storms import Storm, StormPull, nearest_rank, upstream_gets

pytestmark = pytest.mark.unit


def test_a_storm_is_complete_when_every_client_is_done_and_none_failed():
    storm = Storm(1, "r:t", release_at=1000.0, release_s=2.0, clients=3)
    storm.pulls = [StormPull(120.0, 100.0), StormPull(300.0, 250.0), StormPull(90.0, 90.0)]
    assert storm.complete and storm.first_done_ms == 90.0 and storm.last_done_ms == 300.0
    assert storm.pull_ms(0.5) == 100.0 and storm.pull_ms(0.99) == 250.0
    storm.pulls.append(StormPull(400.0, 400.0, "404 MANIFEST_UNKNOWN"))
    storm.clients = 5
    assert not storm.complete and storm.failures == 1 and storm.missing == 1
    assert storm.causes == {"404 MANIFEST_UNKNOWN": 1}
    assert storm.pull_ms(0.99) == 250.0  # the failed pull is not a pull time
    data = storm.to_json()
    assert data["not_done"] == 1 and data["failures"] == 1 and data["amplification"] is None


def test_nearest_rank_gives_a_measured_value():
    assert nearest_rank([], 0.5) is None
    assert nearest_rank([3.0, 1.0, 2.0], 0.5) == 2.0
    assert nearest_rank([float(v) for v in range(1, 101)], 0.99) == 99.0
    assert nearest_rank([5.0], 0.99) == 5.0


def _distribution(at: float, blob_gets: float) -> ServerView:
    view = ServerView("distribution", at)
    view.requests[("blob", "get")] = RequestSeries("blob", "get", histogram=Histogram(count=blob_gets))
    return view


def test_amplification_is_the_upstreams_blob_gets_over_the_images_blobs():
    gets, note = upstream_gets(_distribution(1.0, 10.0), _distribution(5.0, 130.0))
    assert gets == 120.0 and "blob GETs" in note
    storm = Storm(1, "r:t", 0.0, 0.0, blobs=4, upstream_blob_gets=gets)
    assert storm.amplification == 30.0
    assert Storm(2, "r:t", 0.0, 0.0, blobs=4, upstream_blob_gets=4.0).amplification == 1.0  # a perfect cache


def test_amplification_is_unknown_when_the_metrics_cannot_say():
    gets, note = upstream_gets(None, _distribution(1.0, 3.0))
    assert gets is None and "could not be scraped" in note
    zot = ServerView("zot", 2.0)
    gets, note = upstream_gets(zot, zot)
    assert gets is None and "zot" in note
    assert Storm(1, "r:t", 0.0, 0.0, blobs=None, upstream_blob_gets=12.0).amplification is None


def test_the_storm_options_and_their_errors():
    values = g.storms(SimpleNamespace(storm_every="30s", storm_jitter="500ms", storm_layer_size="1MiB-4MiB"))
    assert (values.every, values.jitter, values.layers, values.image, values.push_to) == (30.0, 0.5, 3, None, None)
    bad = {
        "--storm-every must be between 1 s and a day": {"storm_every": "500ms"},
        "--storm-jitter (60 s) must be shorter than --storm-every (60 s)": {"storm_jitter": "1m"},
        "--storm-image: invalid reference": {"storm_image": "Not A Ref"},
        "invalid --storm-push-to 'ftp://host'": {"storm_push_to": "ftp://user:hunter2@host"},
        "leave out --storm-push-to": {"storm_image": "r:t", "storm_push_to": "http://up:5000"},
        "--storm-layers must be between 1 and 1000": {"storm_layers": "0"},
    }
    for message, options in bad.items():
        with pytest.raises(UsageError) as raised:
            g.storms(SimpleNamespace(**options))
        assert message in str(raised.value) and "hunter2" not in str(raised.value)


def test_a_metrics_url_may_be_named():
    values = g.metrics(SimpleNamespace(registry_metrics=["upstream=http://u:5001/metrics", "http://c:5001/metrics"]))
    assert values.urls == ("http://u:5001/metrics", "http://c:5001/metrics")
    assert values.named("upstream") == "http://u:5001/metrics" and values.named("cache") is None
    # An "=" in a bare URL's query is not a name.
    assert g.metrics(SimpleNamespace(registry_metrics=["http://c:1/metrics?a=b"])).urls == ("http://c:1/metrics?a=b",)
