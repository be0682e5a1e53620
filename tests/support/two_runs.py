"""Two Locust environments in one process, each with events of its own and regload installed on
it (``regload.locust.install``), running at the same time against two fake registries: what each
run held and did, as one JSON document (``python -m tests.support.two_runs``).

Importing Locust monkey-patches the interpreter for gevent, so this runs in a child of the test
process (``run_two``).
"""

from __future__ import annotations

import json
from typing import Any

from tests.support.locust_inprocess import run_child

SMALL = ["--pull-pool-layers", "1", "--pull-pool-layer-size", "4KiB", "--push-layers", "1", "--push-layer-size", "2KiB"]


def run_two(timeout: float = 120) -> dict[str, Any]:
    return run_child("tests.support.two_runs", timeout=timeout)


def _main() -> dict[str, Any]:
    import gevent
    from locust.argument_parser import parse_options
    from locust.env import Environment
    from locust.event import Events

    from regload.locust import LoadRun, PullUser, PushUser, install
    from regload.transports.memory import MemoryTransport
    from tests.support.fake_registry import BASE, FakeRegistry

    def environment(name: str, pool_size: int) -> tuple[Any, FakeRegistry]:
        fake = FakeRegistry()
        transport = staticmethod(lambda: MemoryTransport(fake))
        classes = [
            type(f"{name}Pull", (PullUser,), {"fixed_count": 2, "transport_factory": transport}),
            type(f"{name}Push", (PushUser,), {"fixed_count": 1, "transport_factory": transport}),
        ]
        argv = [*SMALL, "--pull-pool-size", str(pool_size), "--repo-prefix", f"two/{name}"]
        # Events of its own: Locust's global ones (and their init listener) never see it.
        env = Environment(user_classes=classes, host=BASE, parsed_options=parse_options(args=argv), events=Events())
        env.create_local_runner()
        install(env)
        return env, fake

    (a, fake_a), (b, fake_b) = environment("a", 2), environment("b", 3)
    for env in (a, b):
        env.runner.start(3, spawn_rate=100)

    def pulls(env: Any) -> int:
        entry = env.stats.entries.get(("image", "PULL"))
        return entry.num_requests if entry else 0

    with gevent.Timeout(60, False):
        while min(pulls(a), pulls(b)) < 10:
            gevent.sleep(0.02)
    out: dict[str, Any] = {"shared_objects": []}
    run_a, run_b = LoadRun.of(a), LoadRun.of(b)
    for attribute in ("settings", "pool", "fresh", "open_model", "tokens", "hints"):
        if getattr(run_a, attribute) is getattr(run_b, attribute):
            out["shared_objects"].append(attribute)
    for name, env, fake in (("a", a, fake_a), ("b", b, fake_b)):
        run = LoadRun.of(env)
        rows = {f"{e.method} {e.name}": (e.num_requests, e.num_failures) for e in env.stats.entries.values()}
        out[name] = {
            "pool": sorted(f"{i.repository}:{i.reference}" for i in run.pool.images.images),
            "rows": rows,
            "repositories": sorted({repository for repository, _ in fake.manifests}),
        }
        env.events.quitting.fire(environment=env, reverse=True)
        env.runner.quit()
    return out


if __name__ == "__main__":
    print(json.dumps(_main()))
