"""End to end: Locust's web UI with regload's options, driven in headless Chromium.

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and the ``playwright`` package from PyPI;
Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from regload.local_registry import free_port
from regload.locust.options import add_arguments
from tests.support.locust_run import SMALL_IMAGES, Locust
from tests.support.web_form import untouched_form

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 30_000

#: regload's options as the web UI names its custom parameters (camelCase of the option's dest).
REGLOAD_FIELDS = (
    "registryUsername",
    "registryPassword",
    "tokenCache",
    "repos",
    "pullPoolSize",
    "pullJobs",
    "pushLayers",
    "pushLayerSize",
    "uploadMode",
    "clientProfile",
    "userAgent",
    "checkFailRatio",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=WAIT_MS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def web_ui(registry_anon, tmp_path) -> Iterator[tuple[Locust, str]]:
    """``locust -f locustfile.py --class-picker`` with its web UI on a free loopback port."""
    port = free_port()
    args = ["--host", registry_anon.url, "--web-host", "127.0.0.1", "--web-port", str(port), "--class-picker"]
    locust = Locust([*args, *SMALL_IMAGES], tmp_path, name="ui")
    try:
        yield locust, locust.wait_for_web_ui(port)
    finally:
        locust.kill()


def web_ui_options() -> set[str]:
    """The dest of every regload option shown in the web UI."""
    dests: set[str] = set()

    class Parser:
        def add_argument(self, *flags: str, **kwargs: Any) -> None:
            if kwargs.get("include_in_web_ui", True):
                dests.add(kwargs.get("dest") or flags[0].lstrip("-").replace("-", "_"))

    add_arguments(Parser())
    return dests


def stats(url: str) -> dict:
    """What the UI polls: ``/stats/requests``."""
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{url}/stats/requests", timeout=10) as r:
        return json.load(r)


def test_web_ui_runs_and_stops_a_push_load(web_ui, page, tmp_path):
    locust, url = web_ui
    page.goto(url)

    # regload's options are custom parameters; the password is a password input.
    page.get_by_text("Custom parameters").click()
    for field in REGLOAD_FIELDS:
        assert page.locator(f"[name={field}]").count() == 1, field
    assert page.locator("input[name=registryPassword]").get_attribute("type") == "password"
    assert page.locator("input[name=pushLayerSize]").input_value() == "32KiB-64KiB"  # from the command line
    # Changed here, they must reach the users: one layer of 16 KiB instead of two of 32-64 KiB.
    page.locator("input[name=pushLayers]").fill("1")
    page.locator("input[name=pushLayerSize]").fill("16KiB")
    page.locator("select[name=uploadMode]").select_option("monolithic")
    page.locator("select[name=clientProfile]").select_option("containerd")  # whose pushes never ping

    # The class picker: PushUser only.
    page.locator("tr", has_text="PullUser").locator("input[type=checkbox]").uncheck()
    assert page.locator("tr", has_text="PushUser").locator("input[type=checkbox]").is_checked()
    page.locator("input[name=userCount]").fill("3")
    page.locator("input[name=spawnRate]").fill("3")
    with page.expect_request(f"{url}/swarm") as swarm:
        page.get_by_role("button", name="Start").click()

    # The form posts each option under the name of the option's dest, or Locust drops it.
    posted = parse_qs(swarm.value.post_data or "", keep_blank_values=True)
    assert web_ui_options() <= set(posted), sorted(web_ui_options() - set(posted))
    assert posted["user_classes"] == ["PushUser"] and posted["push_layer_size"] == ["16KiB"]
    assert posted["client_profile"] == ["containerd"]

    # Endpoint rows and the whole-operation row appear in the statistics table.
    page.locator("tr", has_text="/v2/<name>/blobs/<digest>").first.wait_for()
    page.locator("tr", has_text="/v2/<name>/blobs/uploads/").first.wait_for()
    push_row = page.locator("tr").filter(has=page.locator("td", has_text=re.compile(r"^PUSH$")))
    push_row.first.wait_for()
    assert page.locator("td", has_text=re.compile(r"^PULL$")).count() == 0  # PullUser was not picked

    # The Throughput tab shows megabytes pushed.
    page.get_by_role("tab", name="Throughput").click()
    moved = page.locator("tr", has_text="PUSH image")
    deadline = time.monotonic() + WAIT_MS / 1000
    while float(moved.locator("td").nth(3).inner_text()) <= 0:
        assert time.monotonic() < deadline, moved.inner_text()
        page.wait_for_timeout(250)
    screenshot = tmp_path / "throughput.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and screenshot.stat().st_size > 1000

    # The form's options reached the users: one 16 KiB layer, monolithic uploads, no PATCH.
    rows = {(r["method"], r["name"]): r for r in stats(url)["stats"]}
    push = rows[("PUSH", "image")]
    assert push["num_failures"] == 0 and 16 * 1024 <= push["avg_content_length"] < 32 * 1024, push
    assert ("PATCH", "/v2/<name>/blobs/uploads/<session>") not in rows, sorted(rows)
    assert ("GET", "/v2/") not in rows, sorted(rows)  # the containerd profile: no ping

    # Stop from the UI: the state becomes stopped.
    page.get_by_role("button", name="Stop").click()
    page.get_by_text(re.compile(r"^stopped$", re.I)).first.wait_for()
    assert stats(url)["state"] == "stopped"

    # Locust quits cleanly on SIGTERM, the form's (empty) check fields notwithstanding.
    assert locust.terminate() == 0, locust.output[-6000:]
    assert "Traceback" not in locust.stderr, locust.output[-6000:]


def test_the_browser_posts_an_untouched_form_as_the_form_emulation_says(web_ui, page):
    """``tests.support.web_form`` stands in for a browser in ``test_web_form.py``: what Chromium
    posts for a form nobody touched is what it computes from the served page, field by field."""
    locust, url = web_ui
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=10) as served:
        expected = untouched_form(served.read().decode())
    page.goto(url)
    page.get_by_text("Custom parameters").click()
    with page.expect_request(f"{url}/swarm") as swarm:
        page.get_by_role("button", name="Start").click()
    posted = parse_qs(swarm.value.post_data or "", keep_blank_values=True)
    assert {name: posted.get(name) for name in expected} == {name: [value] for name, value in expected.items()}
    assert posted["upload_mode"] == ["profile"]  # the profile's, not the first mode listed
    page.get_by_role("button", name="Stop").click()
    page.get_by_text(re.compile(r"^stopped$", re.I)).first.wait_for()
    assert locust.terminate() == 0, locust.output[-6000:]


def test_a_capacity_search_from_the_form_shows_its_steps_and_charts_its_knee(registry_anon, page, tmp_path):
    port = free_port()
    args = ["--host", registry_anon.url, "--web-host", "127.0.0.1", "--web-port", str(port)]
    args += ["--capacity-settle", "0.5s", "--check-percentile", "PULL image:p99<5000", *SMALL_IMAGES, "PullUser"]
    locust = Locust(args, tmp_path, name="ui")
    try:
        url = locust.wait_for_web_ui(port)
        page.goto(url)
        page.get_by_text("Custom parameters").click()
        page.locator("select[name=findCapacity]").select_option("pull")
        page.locator("input[name=capacityStart]").fill("5")
        page.locator("input[name=capacityHold]").fill("2s")
        page.locator("input[name=userCount]").fill("20")
        page.locator("input[name=spawnRate]").fill("20")
        page.get_by_role("button", name="Start").click()

        # The Capacity tab lists each step as it ends: 5/s, then 10/s (the registry takes both).
        page.get_by_role("tab", name="Capacity").click()
        page.locator("tr", has_text="double").nth(1).wait_for()
        assert page.locator("tr", has_text="double").first.locator("td").nth(2).inner_text() == "5"

        # The knee, drawn by Plotly from the web UI's own copy of its script.
        chart = page.context.new_page()
        chart.goto(f"{url}/regload/capacity")
        chart.locator(".main-svg").first.wait_for()
        assert chart.locator(".scatterlayer .trace").count() >= 3  # the p99, the achieved and offered rates
        assert "offered rate" in (chart.locator(".xtitle").text_content() or "")
        screenshot = tmp_path / "knee.png"
        chart.screenshot(path=str(screenshot))
        assert screenshot.stat().st_size > 5000

        page.get_by_role("button", name="Stop").click()
        page.get_by_text(re.compile(r"^stopped$", re.I)).first.wait_for()
        answer = page.locator("tr", has_text="answer").inner_text()
        assert "the run stopped before the search ended" in answer, answer
        assert locust.terminate() == 1, locust.output[-6000:]  # no capacity confirmed: exit 1
        assert "Traceback" not in locust.stderr, locust.output[-6000:]
    finally:
        locust.kill()


def test_the_run_over_time_charts_client_and_registry_side_by_side(page, tmp_path):
    # No --host: the embedded registry runs with its metrics on, and is scraped without being asked.
    port = free_port()
    args = ["--web-host", "127.0.0.1", "--web-port", str(port), "--autostart", "-u", "10", "-r", "10"]
    args += [
        "--pull-rate",
        "5",
        "--push-rate",
        "1",
        "--registry-metrics-interval",
        "1",
        *SMALL_IMAGES,
        "PullUser",
        "PushUser",
    ]
    locust = Locust(args, tmp_path, name="ui")
    try:
        url = locust.wait_for_web_ui(port)

        # The Registry tab: the server's rows beside the client's.
        page.goto(url)
        page.get_by_role("tab", name="Registry").click()
        page.locator("tr", has_text="blob get").first.wait_for()
        page.locator("tr", has_text="process (").first.wait_for()

        errors: list[str] = []  # the chart page's own: a console error, a failed load, an exception
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(f"{url}/regload/timeline")
        page.locator(".main-svg").first.wait_for()
        points: dict[str, int] = {}
        deadline = time.monotonic() + WAIT_MS / 1000
        wanted = ("pulled B/s", "arrivals started/s", "client PULL image", "registry blob get", "CPU ", "RSS ")
        while not all(any(name.startswith(w) and n > 2 for name, n in points.items()) for w in wanted):
            assert time.monotonic() < deadline, "; ".join(f"{k}: {v}" for k, v in sorted(points.items()))
            page.wait_for_timeout(500)
            traces = page.evaluate(
                "() => document.getElementById('chart').data.map(t => [t.name, t.y.filter(v => v !== null).length])"
            )
            points = {name: n for name, n in traces}
        assert errors == [], errors
        screenshot = tmp_path / "timeline.png"
        page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.stat().st_size > 10_000
        assert locust.terminate() == 0, locust.output[-6000:]
        assert "Traceback" not in locust.stderr, locust.output[-6000:]
    finally:
        locust.kill()
