"""A run started from Locust's web form, left untouched, behaves as the same run headless.

The form is read from the page the web UI serves and posted as a browser posts it
(``tests.support.web_form``; ``test_locust_ui.py`` checks in Chromium that the two agree). Both
runs go through a recording proxy, and what they sent is compared: the requests (method and path
template), the header fields of each, and the User-Agent.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from regload.local_registry import free_port
from regload.options.groups import GROUPS
from regload.options.spec import LOCUST
from tests.support import traffic
from tests.support.fault_proxy import Exchange, FaultProxy
from tests.support.locust_run import SMALL_IMAGES, Locust, assert_clean, headless, run_locust
from tests.support.web_form import template_args, untouched_form

pytestmark = pytest.mark.locust_run

CLASSES = ("PullUser", "PushUser")
PUSHES = 3  # whole pushes the form's run makes before it is stopped
WAIT = 60.0

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str) -> str:
    with _NO_PROXY.open(url, timeout=10) as response:
        return response.read().decode()


def _post(url: str, fields: dict[str, str] | list[tuple[str, str]]) -> dict:
    data = urllib.parse.urlencode(fields).encode()
    with _NO_PROXY.open(urllib.request.Request(url, data=data, method="POST"), timeout=10) as response:
        return json.loads(response.read() or b"{}")


def _shape(exchanges: list[Exchange]) -> set[tuple[tuple[str, str], tuple[str, ...]]]:
    """Each request as (method, template) with the names of its header fields."""
    return {(traffic.template(e), tuple(sorted({name.lower() for name, _ in e.fields}))) for e in exchanges}


def _run_from_the_form(proxy: FaultProxy, args: list[str], workdir: Path) -> str:
    """Start the web UI with ``args``, post its untouched form, stop after a few pushes; the form."""
    port = free_port()
    ui = ["--host", proxy.url, "--web-host", "127.0.0.1", "--web-port", str(port), *SMALL_IMAGES, *args]
    locust = Locust([*ui, *CLASSES], workdir, name="web")
    try:
        url = locust.wait_for_web_ui(port)
        page = _get(url)
        # The form lists regload's options in the groups' order (what a user changes most first).
        shown = list(template_args(page)["extra_options"])
        assert shown == [o.dest for group in GROUPS for o in group.of(LOCUST) if o.web], shown
        form = untouched_form(page)
        started = _post(f"{url}/swarm", {**form, "user_count": "2", "spawn_rate": "2", "host": proxy.url})
        assert started.get("success"), started
        deadline = time.monotonic() + WAIT
        while True:
            rows = {(r["method"], r["name"]): r for r in json.loads(_get(f"{url}/stats/requests"))["stats"]}
            if rows.get(("PUSH", "image"), {}).get("num_requests", 0) >= PUSHES:
                break
            assert time.monotonic() < deadline, (sorted(rows), locust.output[-4000:])
            time.sleep(0.2)
        _post(f"{url}/stop", {})
        assert locust.terminate() == 0, locust.output[-6000:]
        assert "Traceback" not in locust.output, locust.output[-6000:]
        assert all(row["num_failures"] == 0 for row in rows.values()), rows
    finally:
        locust.kill()
    return json.dumps(form)


@pytest.mark.parametrize("profile", ["regload", "docker"])
def test_an_untouched_form_starts_the_run_the_command_line_starts(registry_anon, tmp_path, profile):
    args = ["--client-profile", profile, "--repo-prefix", f"form/{profile}-{uuid.uuid4().hex[:8]}"]
    with FaultProxy(registry_anon.url, record=True, max_connections=512, timeout=10) as proxy:
        form = _run_from_the_form(proxy, args, tmp_path)
        from_the_form = proxy.exchanges()
        proxy.reset_counters()
        result = run_locust(
            headless(proxy.url, tmp_path / "run", *args, *CLASSES, users=2, run_time="4s"),
            tmp_path,
            timeout=WAIT,
            name="run",
        )
        headless_run = proxy.exchanges()
    assert_clean(result)
    # Both push with one PATCH per blob (streamed), the default of both profiles.
    for exchanges in (from_the_form, headless_run):
        assert ("PATCH", "/v2/<name>/blobs/uploads/<session>") in traffic.requests(exchanges), form
    assert _shape(from_the_form) == _shape(headless_run), form
    assert traffic.user_agents(from_the_form) == traffic.user_agents(headless_run)
