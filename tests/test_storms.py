"""Storms on a new tag, against real docker-registry processes: every StormUser released at once
(or within the jitter) to pull the image just pushed, in one process and across two workers, with
a client profile and nodes; a storm whose image is missing counts every pull as failed with its
cause; and a pull-through cache (a second docker-registry with ``proxy.remoteurl``) in front of
the upstream the images are pushed to, whose amplification is read off the upstream's metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regload.local_registry import LocalRegistry, RegistryConfig, free_port
from tests.support.locust_run import Locust, Result, headless, run_locust

pytestmark = pytest.mark.locust_run
SMALL_STORM = ("--storm-layers", "2", "--storm-layer-size", "256KiB")


def storms(result: Result) -> list[dict[str, Any]]:
    path = Path(f"{result.prefix}_storms.json")
    assert path.exists(), result.output[-4000:]
    listed: list[dict[str, Any]] = json.loads(path.read_text())["storms"]
    return listed


def whole(listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The storms the test's end did not cut short."""
    return [s for s in listed if not s["cut_short"]]


def test_every_storm_user_pulls_each_fresh_image_once_released_together(registry_anon, tmp_path):
    args = headless(registry_anon.url, tmp_path / "run", *SMALL_STORM, users=12, run_time="12s")
    args += ["--storm-every", "5s", "--repo-prefix", "storms/one", "--client-profile", "containerd"]
    args += ["--node-users", "3", "--node-parallel-pulls", "2", "StormUser"]
    result = run_locust(args, tmp_path, timeout=90, name="run")
    assert result.code == 0, result.output[-4000:]
    listed = storms(result)
    done = whole(listed)
    assert len(done) >= 2, listed
    for storm in done:
        assert storm["clients"] == 12 and storm["failures"] == 0 and storm["not_done"] == 0, storm
        assert storm["image"].startswith("storms/one-storm:storm-") and storm["blobs"] == 3, storm
        assert 0 < storm["first_done_ms"] <= storm["last_done_ms"] < 5000, storm
        assert storm["pull_p50_ms"] <= storm["pull_p99_ms"] <= storm["last_done_ms"], storm
        assert storm["amplification"] is None and storm["through_cache"] is False, storm
    assert len({s["image"] for s in listed}) == len(listed)  # a fresh image each time
    stats = result.json_stats()
    assert stats[("STORM", "push")]["num_requests"] == len(listed)
    assert stats[("STORM", "complete")]["num_requests"] == len(done)
    assert stats[("STORM", "complete")]["num_failures"] == 0
    assert stats[("STORM", "pull")]["num_requests"] >= 12 * len(done)
    assert ("NODE", "pull queue") in stats  # four nodes of three, two pulls at a time each
    assert ("PULL", "image") not in stats  # a storm's pulls are its own rows
    assert "regload storms" in result.stderr and "Traceback" not in result.stderr
    assert '"storm 1"' in Path(f"{result.prefix}_report.html").read_text()  # its release marked on the charts


def test_the_jitter_spreads_the_releases(registry_anon, tmp_path):
    args = headless(registry_anon.url, tmp_path / "run", *SMALL_STORM, users=16, run_time="9s")
    args += ["--storm-every", "6s", "--storm-jitter", "2s", "--repo-prefix", "storms/jitter", "StormUser"]
    result = run_locust(args, tmp_path, timeout=90, name="run")
    assert result.code == 0, result.output[-4000:]
    [storm, *_] = whole(storms(result))
    assert storm["clients"] == 16
    # Sixteen releases spread uniformly over 2 s: the spread is under 0.5 s once in ~10^8 runs.
    assert storm["last_done_ms"] - storm["first_done_ms"] > 500, storm
    # Each pull is timed from its own release, not the storm's.
    assert storm["pull_p99_ms"] < storm["last_done_ms"], storm


def test_two_workers_release_their_storm_users_at_the_masters_time(registry_anon, tmp_path):
    port = str(free_port())
    options = headless(registry_anon.url, tmp_path / "master", *SMALL_STORM, users=10, run_time="12s")
    options += ["--storm-every", "5s", "--repo-prefix", "storms/two"]
    options += ["--master", "--expect-workers", "2", "--master-bind-host", "127.0.0.1", "--master-bind-port", port]
    worker = ["--worker", "--master-host", "127.0.0.1", "--master-port", port]
    master = Locust([*options, "StormUser"], tmp_path, name="master")
    workers = [Locust(worker, tmp_path, name=f"worker{i}") for i in (1, 2)]
    try:
        master.wait(90)
    finally:
        for process in (master, *workers):
            process.kill()
    result = Result(master.process.returncode, master.stdout, master.stderr, tmp_path / "master")
    assert result.code == 0, result.output[-4000:]
    done = whole(storms(result))
    assert len(done) >= 2
    for storm in done:
        # Both workers' StormUsers (five each) reported, every pull finished soon after the release.
        assert storm["clients"] == 10 and storm["failures"] == 0 and storm["not_done"] == 0, storm
        assert 0 < storm["first_done_ms"] <= storm["last_done_ms"] < 3000, storm
    assert "Traceback" not in result.stderr + "".join(w.stderr for w in workers)


def test_a_storm_on_a_missing_image_fails_every_pull_with_its_cause(registry_anon, tmp_path):
    args = headless(registry_anon.url, tmp_path / "run", users=5, run_time="5s")
    args += ["--storm-every", "3s", "--storm-image", "storms/missing:nothing-here", "StormUser"]
    result = run_locust(args, tmp_path, timeout=60, name="run")
    assert result.code == 1, result.output[-4000:]
    [storm, *_] = whole(storms(result))
    assert storm["clients"] == 5 and storm["failures"] == 5 and storm["pushed_to"] is None, storm
    [(cause, count)] = storm["causes"].items()
    assert count == 5 and "MANIFEST_UNKNOWN" in cause.upper(), storm["causes"]
    complete = result.json_stats()[("STORM", "complete")]
    assert complete["num_failures"] == complete["num_requests"] >= 1
    assert "5 failed (5×" in result.stderr, result.stderr[-3000:]
    assert ("STORM", "push") not in result.json_stats()  # nothing pushed: an existing image
    assert "Traceback" not in result.stderr


# -- a pull-through cache ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRegistry, LocalRegistry]]:
    """An upstream docker-registry, and a second one in proxy mode caching it, both with metrics."""
    upstream = LocalRegistry(config=RegistryConfig(metrics=True), storage_dir=tmp_path_factory.mktemp("upstream"))
    upstream.start()
    proxy_config = RegistryConfig(metrics=True, proxy_remote_url=upstream.url)
    proxy = LocalRegistry(config=proxy_config, storage_dir=tmp_path_factory.mktemp("cache"))
    try:
        proxy.start()
        yield upstream, proxy
    finally:
        proxy.stop()
        upstream.stop()


def test_a_pull_through_cache_storm_measures_how_often_the_upstream_served_each_blob(cache, tmp_path):
    upstream, proxy = cache
    args = headless(proxy.url, tmp_path / "run", users=20, run_time="13s")
    args += ["--storm-every", "6s", "--storm-layers", "3", "--storm-layer-size", "2MiB", "--repo-prefix", "storms/px"]
    args += ["--storm-push-to", upstream.url, "--registry-metrics", f"upstream={upstream.metrics_url}"]
    args += ["--registry-metrics", proxy.metrics_url, "StormUser"]
    result = run_locust(args, tmp_path, timeout=90, name="run")
    assert result.code == 0, result.output[-4000:]
    done = whole(storms(result))
    assert len(done) >= 2, storms(result)
    for storm in done:
        assert storm["clients"] == 20 and storm["failures"] == 0, storm
        assert storm["through_cache"] and storm["pushed_to"] == upstream.url, storm
        assert storm["blobs"] == 4, storm  # three layers and the config
        # Every blob came from the upstream at least once (a cold miss), and distribution's proxy
        # fetched more than once per blob under the storm: each concurrent miss goes upstream.
        assert storm["upstream_blob_gets"] >= storm["blobs"], storm
        assert storm["amplification"] == pytest.approx(storm["upstream_blob_gets"] / 4, abs=0.01)
        assert storm["amplification"] > 1.0, storm
    print("amplification per storm:", [s["amplification"] for s in done])  # for the closing note
    assert "the upstream served each of its 4 blobs" in result.stderr, result.stderr[-3000:]
    # The upstream's registry report stands alone: regload's clients pull from the cache.
    reports = {r["source"]: r for r in json.loads(Path(f"{result.prefix}_registry.json").read_text())}
    assert all(e["client_requests"] is None for e in reports[upstream.metrics_url]["endpoints"])
    assert "upstream of the cache" in reports[upstream.metrics_url]["blind_spots"][0]
    assert any(e["client_requests"] for e in reports[proxy.metrics_url]["endpoints"])


def test_a_warm_cache_serves_a_storm_without_the_upstream(cache, tmp_path):
    upstream, proxy = cache
    seed = headless(upstream.url, tmp_path / "seed", users=1, run_time="4s")
    seed += ["--storm-every", "60s", "--repo-prefix", "storms/warm", *SMALL_STORM, "StormUser"]
    seeded = run_locust(seed, tmp_path, timeout=60, name="seed")  # one storm on the upstream: the image
    [image] = [s["image"] for s in storms(seeded)]
    args = headless(proxy.url, tmp_path / "run", users=8, run_time="9s")
    args += ["--storm-every", "4s", "--storm-image", image, "--registry-metrics", f"upstream={upstream.metrics_url}"]
    result = run_locust([*args, "StormUser"], tmp_path, timeout=60, name="run")
    assert result.code == 0, result.output[-4000:]
    first, second, *_ = whole(storms(result))
    assert first["upstream_blob_gets"] >= first["blobs"] == 3, first  # cold: fetched from the upstream
    assert second["upstream_blob_gets"] == 0 and second["amplification"] == 0, second  # warm: none
