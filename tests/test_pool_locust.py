"""The pull pool under Locust against a real registry, counted by the fault proxy in front of it:
a distributed run seeds once (the master; each pool manifest PUT once, none by the workers), a
second run reuses the pool and pushes nothing, and ``--pull-after-push`` pulls pushed images."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest

from regload.local_registry import LocalRegistry, free_port
from tests.support.fault_proxy import _MAX_EVENTS as MAX_EVENTS
from tests.support.fault_proxy import FaultProxy
from tests.support.locust_run import Locust, Result, assert_clean, headless, run_locust

pytestmark = pytest.mark.locust_run

PULL = ("PULL", "image")
POOL = ["--pull-pool-size", "12", "--pool-families", "3", "--pool-base-layers", "2"]
POOL += ["--pull-pool-layers", "1", "--pull-pool-layer-size", "16KiB"]


@pytest.fixture
def proxy(tmp_path: Path) -> Any:
    """A registry of this test's own behind a proxy counting its requests."""
    local = LocalRegistry(storage_dir=tmp_path / "storage").start()
    try:
        with FaultProxy(local.url) as p:
            p.registry = local
            yield p
    finally:
        local.stop()


def manifest_puts(proxy: Any) -> int:
    return proxy.counters().requests_by_endpoint.get("PUT manifest", 0)


def test_a_distributed_run_seeds_the_pool_once_and_a_second_run_reuses_it(proxy, tmp_path):
    port = free_port()
    master_args = ["--master", "--expect-workers", "3", "--expect-workers-max-wait", "30"]
    master_args += ["--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), *POOL, "PullUser"]
    worker_args = ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    master = Locust(
        headless(proxy.url, tmp_path / "master", *master_args, users=6, run_time="5s"), tmp_path, name="master"
    )
    workers = [Locust(worker_args, tmp_path, name=f"worker{i}") for i in (1, 2, 3)]
    try:
        code = master.wait(90)
        worker_codes = [w.wait(30) for w in workers]
    finally:
        for process in (master, *workers):
            process.kill()
    result = Result(code, master.stdout, master.stderr, tmp_path / "master")
    assert_clean(result)  # no pull failed: every worker pulled only once the pool was there
    assert worker_codes == [0, 0, 0], [w.output for w in workers]
    assert int(result.row(*PULL)["Request Count"]) > 0

    # Every pool image pushed once, by the master alone: 12 manifest PUTs, and each tag is there.
    assert manifest_puts(proxy) == 12, proxy.counters().requests_by_endpoint
    assert "pull pool ready: 12 images (12 pushed, 0 reused" in master.stderr, master.stderr[-3000:]
    for worker in workers:
        assert "pull pool ready: 12 images (seeded by the master)" in worker.stderr, worker.output[-3000:]
        assert "pushed" not in worker.stderr
    fingerprint = master.stderr.split("tags pool-", 1)[1].split("-N", 1)[0]
    for i in range(12):
        url = f"{proxy.registry.url}/v2/regload/load-{i % 4}/manifests/pool-{fingerprint}-{i}"
        request = urllib.request.Request(url, method="HEAD")
        request.add_header("Accept", "application/vnd.oci.image.manifest.v1+json")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200

    # Another run of the same spec (one process this time) finds the pool and pushes nothing.
    proxy.reset_counters()
    again = run_locust(
        headless(proxy.url, tmp_path / "again", *POOL, "PullUser", users=2), tmp_path, name="again", timeout=60
    )
    assert_clean(again)
    assert "pull pool ready: 12 images (0 pushed, 12 reused" in again.stderr, again.stderr[-3000:]
    counts = proxy.counters().requests_by_endpoint
    assert not {k: v for k, v in counts.items() if k.split()[0] in ("PUT", "POST", "PATCH")}, counts
    assert int(again.row(*PULL)["Request Count"]) > 0


def test_a_worker_that_joins_late_gets_the_pool_without_pushing(proxy, tmp_path):
    port = free_port()
    master_args = ["--master", "--expect-workers", "1", "--master-bind-host", "127.0.0.1"]
    master_args += ["--master-bind-port", str(port), *POOL, "PullUser"]
    worker_args = ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    master = Locust(
        headless(proxy.url, tmp_path / "master", *master_args, users=4, run_time="8s"), tmp_path, name="master"
    )
    first = Locust(worker_args, tmp_path, name="first")
    late = None
    try:
        master.wait_for("pull pool ready: 12 images", 30)
        late = Locust(worker_args, tmp_path, name="late")  # the test runs: the master rebalances users to it
        late.wait_for("pull pool ready: 12 images (seeded by the master)", 20)
        code = master.wait(60)
        codes = [first.wait(30), late.wait(30)]
    finally:
        for process in (master, first, *([late] if late else [])):
            process.kill()
    result = Result(code, master.stdout, master.stderr, tmp_path / "master")
    assert_clean(result)
    assert codes == [0, 0], late.output[-3000:]
    assert manifest_puts(proxy) == 12, proxy.counters().requests_by_endpoint


def test_pull_after_push_pulls_each_pushed_image_once(proxy, tmp_path):
    # No pool: every pull is of an image just pushed (probability 1, no delay).
    args = ["--pull-pool-size", "0", "--pull-after-push", "1", "PullUser", "PushUser"]
    result = run_locust(headless(proxy.url, tmp_path / "run", *args, users=2), tmp_path, name="run", timeout=60)
    assert_clean(result)
    counts = proxy.counters().requests_by_endpoint
    pushes, pulls = counts.get("PUT manifest", 0), counts.get("GET manifest", 0)
    # The stats may miss the last requests the proxy saw (sent while the run stopped).
    assert 0 < int(result.row(*PULL)["Request Count"]) <= pulls, counts
    # The last ones pushed may be left at the stop: the one in flight, and those pushed while the
    # PullUser, finding none due, waited its 0.1 s (a push takes ~45 ms here): up to 4.
    assert pushes - 4 <= pulls <= pushes, counts
    events = proxy.events()
    assert len(events) < MAX_EVENTS, len(events)  # all of them: the check below sees every pull
    pulled = [e.target for e in events if e.endpoint == "GET manifest"]
    assert len(pulled) == pulls and len(set(pulled)) == pulls  # each pushed image pulled once


def test_pull_after_push_with_a_delay_in_the_open_model(proxy, tmp_path):
    # A pool to pull from too: a pushed image is pulled once, 1 s later, at a PULL arrival.
    args = [*POOL, "--pull-pool-size", "2", "--pull-after-push", "1:1s", "--pull-rate", "8", "PullUser", "PushUser"]
    result = run_locust(
        headless(proxy.url, tmp_path / "run", *args, users=6, run_time="5s"), tmp_path, name="run", timeout=60
    )
    # Not assert_clean: on a busy machine an arrival may find no idle PullUser (a "dropped" failure).
    assert result.row(*PULL)["Failure Count"] == "0", result.failures()
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    tags = [e.target for e in proxy.events() if e.endpoint == "GET manifest" and "/manifests/push-" in e.target]
    assert tags and len(tags) == len(set(tags)), tags  # pushed images pulled, each once
    assert len(tags) < manifest_puts(proxy)  # those of the last second are not due at the stop
