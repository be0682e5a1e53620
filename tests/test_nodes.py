"""kubelet-style nodes (``--node-users``, ``--node-parallel-pulls``) and the platform mix of
Locust pulls (``--pull-platform``)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import gevent
import pytest

from regload.errors import UsageError
from regload.locust.options import settings_from
from regload.manifest import Platform
from regload.workload.nodes import Node, Nodes, NodeSpec
from regload.workload.platforms import PlatformMix
from tests.support import traffic
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.locust_run import Locust, Result, headless


@pytest.mark.unit
def test_users_join_nodes_in_groups_and_no_nodes_means_none():
    nodes = Nodes(NodeSpec(users=3))
    joined = [nodes.join() for _ in range(7)]
    assert joined[0] is joined[1] is joined[2] and joined[3] is joined[5] and joined[6] is not joined[5]
    assert len({id(n) for n in joined}) == 3
    assert Nodes(NodeSpec()).join() is None
    with pytest.raises(UsageError):
        NodeSpec(users=2, parallel_pulls=0)


def _peak_of_pulls(parallel: int) -> int:
    """Six pulls on a node of ``parallel`` slots, every other one failing: the most at once."""
    node, running, peak = Node(parallel), [0], [0]

    def pull(fail: bool) -> None:
        with node.pulling():
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            # A yield, not a timed sleep: after some tests of this process the hub's timers
            # no longer fire (seen in the full suite), and a pull must not wait on one.
            gevent.sleep(0)
            running[0] -= 1
            if fail:
                raise RuntimeError("registry fault")

    greenlets = [gevent.spawn(pull, i % 2 == 0) for i in range(6)]
    gevent.joinall(greenlets, timeout=5)
    assert all(g.dead for g in greenlets)  # a failed pull freed its slot: the rest ran
    return peak[0]


@pytest.mark.unit
def test_a_node_runs_as_many_pulls_at_once_as_it_is_given_and_frees_a_slot_on_failure():
    assert (_peak_of_pulls(1), _peak_of_pulls(2)) == (1, 2)


@pytest.mark.unit
def test_a_platform_mix_is_drawn_by_its_weights():
    mix = PlatformMix.parse("linux/amd64:3, linux/arm64/v8:1")
    rng = random.Random(7)
    draws = [mix.pick(rng) for _ in range(8000)]
    arm = draws.count(Platform("linux", "arm64", "v8")) / len(draws)
    assert abs(arm - 0.25) < 0.02 and set(draws) == set(mix.platforms)
    assert PlatformMix.parse("").platforms == (Platform("linux", "amd64"),)
    assert PlatformMix.parse("linux/arm64").pick(rng) == Platform("linux", "arm64")
    for bad in ("linux", "linux/amd64:0", "linux/amd64:x"):
        with pytest.raises(UsageError, match="--pull-platform"):
            PlatformMix.parse(bad)


@pytest.mark.unit
def test_locust_settings_carry_nodes_and_platforms():
    s = settings_from(SimpleNamespace(node_users="50", node_parallel_pulls="2", pull_platform="linux/arm64"))
    assert s.nodes == NodeSpec(50, 2) and s.platforms.platforms == (Platform("linux", "arm64"),)
    assert settings_from(None).nodes == NodeSpec()
    with pytest.raises(UsageError, match="--node-parallel-pulls"):
        settings_from(SimpleNamespace(node_parallel_pulls="0"))


@pytest.mark.locust_run
@pytest.mark.parametrize(("node_users", "peak"), [(4, 1), (2, 2)])
def test_the_pulls_of_a_node_go_one_at_a_time(registry_anon, tmp_path, node_users, peak):
    """4 PullUsers on 4 // node_users nodes: at most one pull per node in flight, seen at the
    registry as that many blob GETs at once (each pool image has one layer; every blob GET is
    slowed so that pulls overlap when they may)."""
    with FaultProxy(registry_anon.url, record=True, max_connections=512, timeout=10) as proxy:
        proxy.set_faults([Fault("delay", 1.0, method="GET", path=r"/blobs/sha256:", seconds=0.1)])
        args = ["--node-users", str(node_users), "--repo-prefix", f"nodes/n{node_users}", "PullUser"]
        locust = Locust(headless(proxy.url, tmp_path / "run", *args, users=4, run_time="5s"), tmp_path, name="run")
        try:
            code = locust.wait(timeout=60)
        finally:
            locust.kill()
        pulls = [e for e in proxy.exchanges() if e.get("User-Agent") and traffic.blob_gets(traffic.template(e))]
    result = Result(code, locust.stdout, locust.stderr, tmp_path / "run")
    assert code == 0, result.output
    stats = result.json_stats()
    queued = stats[("NODE", "pull queue")]
    pulled = stats[("PULL", "image")]["num_requests"]
    # Every pull waited for its node; the stop cuts short the pull each node has in flight.
    assert pulled > 4 and 0 <= queued["num_requests"] - pulled <= 4 // node_users
    # Seeding (before the users pull) pushes; the blob GETs are the users' pulls only.
    assert traffic.peak_concurrency(pulls, traffic.blob_gets) == peak
