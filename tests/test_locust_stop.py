"""Stopping a web-UI run that uses the embedded registry, as a user does: SIGTERM (``docker
stop``, ``kill``) or Ctrl-C in the terminal (SIGINT to the whole foreground process group).

The users stop first, then the registry: the final report holds no failure made by the registry
going away under running users, the process exits 0, and the registry's files are gone."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from regload.local_registry import free_port
from tests.support.locust_run import SMALL_IMAGES, Locust

pytestmark = pytest.mark.locust_run

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post_swarm(url: str, users: int) -> None:
    form = urllib.parse.urlencode({"user_count": users, "spawn_rate": users}).encode()
    with OPENER.open(urllib.request.Request(f"{url}/swarm", data=form), timeout=10) as r:
        assert json.load(r)["success"], "the web UI refused to start the run"


def operations_done(url: str) -> dict[str, int]:
    with OPENER.open(f"{url}/stats/requests", timeout=10) as r:
        rows = json.load(r)["stats"]
    return {row["method"]: row["num_requests"] for row in rows if row["name"] == "image"}


@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_stopping_a_web_ui_run_stops_the_users_before_the_embedded_registry(tmp_path: Path, how: str) -> None:
    port = free_port()
    prefix = tmp_path / "ui"
    args = ["--web-host", "127.0.0.1", "--web-port", str(port), "--json-file", str(prefix), *SMALL_IMAGES]
    locust = Locust(args, tmp_path, name="ui")  # no --host: the embedded registry
    url = f"http://127.0.0.1:{port}"
    try:
        storage = Path(re.search(r"\(storage (\S+)\)", locust.wait_for("started a local docker-registry", 30))[1])
        locust.wait_for_web_ui(port)
        post_swarm(url, users=4)
        deadline = time.monotonic() + 60
        while min(operations_done(url).get(kind, 0) for kind in ("PULL", "PUSH")) < 3:
            assert time.monotonic() < deadline, locust.output[-4000:]
            time.sleep(0.2)
        assert storage.is_dir()
        if how == "SIGTERM":
            locust.process.send_signal(signal.SIGTERM)
        else:  # a terminal sends SIGINT to every process of its foreground group
            os.killpg(locust.process.pid, signal.SIGINT)
        code = locust.wait(60)
    finally:
        locust.kill()
    assert code == 0, locust.output[-6000:]
    assert "Traceback" not in locust.output, locust.output[-6000:]
    entries = json.loads(Path(f"{prefix}.json").read_text())
    assert {(e["method"], e["name"]) for e in entries} >= {("PULL", "image"), ("PUSH", "image")}, entries
    failed = {(e["method"], e["name"]): e["num_failures"] for e in entries if e["num_failures"]}
    assert failed == {}, (failed, locust.output[-4000:])
    assert not storage.parent.exists(), "the embedded registry's files are left behind"
