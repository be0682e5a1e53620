"""Locust's runner, regload's users and a ``FakeRegistry`` in one process, over the in-memory
transport: no sockets, no registry process, no ``locust`` command.

Importing Locust monkey-patches the interpreter for gevent, so this runs in a child of the test
process: ``python -m tests.support.locust_inprocess '<json scenario>'`` prints one JSON document
with every stats row, the failures, what the fake registry stored, and the exit code the
listeners set. ``run_scenario`` does that from a test.

A scenario: ``argv`` (regload's and Locust's options, parsed by Locust's own parser, so the
options exist only if importing the user classes registered them), ``users`` (class name →
count: ``PullUser``, ``PushUser``), ``until`` (stats row → requests to wait for) with
``timeout`` (seconds), or ``duration`` (seconds to run, whatever happens), ``auth`` (the fake
registry's: null, "basic" or "bearer"), ``fail_every`` (answer every n-th blob GET with 503, a
registry fault the run must count and go through), ``delay`` (seconds the fake takes to answer
each request), ``shape`` (arrivals per second, second by second: an ``arrival_shape``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_scenario(scenario: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    return run_child("tests.support.locust_inprocess", json.dumps(scenario), timeout=timeout)


def run_child(module: str, *args: str, timeout: float = 120) -> dict[str, Any]:
    """``python -m module args…`` in a child (Locust patches the interpreter it is imported in):
    the JSON document it prints last, with its stderr."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env
    )
    if result.returncode != 0:
        raise AssertionError(f"{module} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    out: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])  # after whatever Locust printed
    out["stderr"] = result.stderr
    return out


def _main(scenario: dict[str, Any]) -> dict[str, Any]:
    import gevent
    from locust import events
    from locust.argument_parser import parse_options
    from locust.env import Environment

    from regload.locust.run import LoadRun
    from regload.locust.users import PullUser, PushUser  # as a locustfile of one's own would
    from regload.transports.memory import MemoryTransport
    from tests.support.fake_registry import BASE, FakeRegistry, error

    fake = FakeRegistry(auth=scenario.get("auth"), credentials=("user", "secret"))
    blob_gets = 0

    def faults(request: Any, body: bytes) -> Any:
        nonlocal blob_gets
        if scenario.get("delay"):
            gevent.sleep(scenario["delay"])  # a slow registry: the user's greenlet waits
        every = scenario.get("fail_every")
        if every and request.method == "GET" and "/blobs/sha256:" in request.url:
            blob_gets += 1
            if blob_gets % every == 0:
                return error(503, "UNAVAILABLE", "injected fault")
        return None

    fake.intercept = faults

    def transport() -> MemoryTransport:
        # One transport per user, one registry behind them all (MemoryTransport records per
        # transport, so the fake's own record stays its first transport's; count from its state).
        return MemoryTransport(fake)

    class Steps:  # an arrival shape of one's own: ``shape`` is the rate of each second
        def tick(self, elapsed: float) -> float | None:
            steps = scenario["shape"]
            return steps[int(elapsed)] if elapsed < len(steps) else None

    bases = {"PullUser": PullUser, "PushUser": PushUser}
    extra = {"arrival_shape": Steps()} if "shape" in scenario else {}
    wanted = [
        type(name, (bases[name],), {"fixed_count": count, "transport_factory": transport, **extra})
        for name, count in scenario["users"].items()
    ]
    options = parse_options(args=scenario["argv"])
    # Locust's global events, as its main passes them: regload's listeners are registered there.
    environment = Environment(user_classes=wanted, host=BASE, parsed_options=options, events=events)
    runner = environment.create_local_runner()
    environment.events.init.fire(environment=environment, runner=runner, web_ui=None)
    runner.start(sum(scenario["users"].values()), spawn_rate=100)

    def reached() -> bool:
        rows = {f"{e.method} {e.name}": e.num_requests for e in environment.stats.entries.values()}
        return all(rows.get(name, 0) >= count for name, count in scenario["until"].items())

    if "duration" in scenario:  # a run of fixed length (the open model's rates)
        gevent.sleep(scenario["duration"])
    else:
        with gevent.Timeout(scenario.get("timeout", 30), False):
            while not reached():
                gevent.sleep(0.02)
    environment.events.quitting.fire(environment=environment, reverse=True)  # regload's report and checks
    runner.quit()
    return {
        "reached": reached(),
        "rows": {
            f"{e.method} {e.name}": {"requests": e.num_requests, "failures": e.num_failures}
            for e in environment.stats.entries.values()
        },
        "errors": {f"{e.method} {e.name}: {e.error}": e.occurrences for e in environment.stats.errors.values()},
        "manifests": sorted(f"{repo}:{ref}" for repo, ref in fake.manifests if not ref.startswith("sha256:")),
        "tokens": len(fake.tokens),
        "blob_faults": blob_gets // scenario["fail_every"] if scenario.get("fail_every") else 0,
        "exit_code": environment.process_exit_code,
        "arrivals": [dataclasses.asdict(row) for row in LoadRun.of(environment).open_model.rows()],
        "image_times_ms": {
            kind: entry.total_response_time / max(1, entry.num_requests)
            for (name, kind), entry in environment.stats.entries.items()
            if name == "image"
        },
    }


if __name__ == "__main__":
    print(json.dumps(_main(json.loads(sys.argv[1]))))
