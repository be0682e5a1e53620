"""``regload compare`` on real runs against a real docker-registry: a run compared with itself
holds every limit; the same run behind the fault proxy with 100 ms added to each request is
flagged, naming the row; Markdown for a CI comment; a usage error is one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import assert_clean_failure, regload
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.locust_run import Result, headless, run_locust

pytestmark = pytest.mark.locust_run
LIMITS = ("--max-regression", "PULL image:p99:+20%", "--max-regression", "*:p50:+50%")


def pull_run(host: str, tmp_path: Path, name: str) -> Result:
    args = headless(host, tmp_path / name, "--pull-rate", "8", "--arrivals", "uniform", users=6, run_time="6s")
    result = run_locust([*args, "PullUser"], tmp_path, timeout=90, name=name)
    assert result.code == 0, result.output[-4000:]
    return result


def test_a_run_holds_against_itself_and_a_slower_one_is_flagged(registry_anon, tmp_path):
    base = pull_run(registry_anon.url, tmp_path, "base")
    same = regload("compare", str(base.prefix), f"{base.prefix}.json", *LIMITS)
    assert same.code == 0, same.output
    assert "every limit held" in same.stdout and "REGRESSION" not in same.stdout

    with FaultProxy(registry_anon.url, seed=5) as proxy:
        proxy.set_faults([Fault("delay", 1.0, seconds=0.1)])
        slow = pull_run(proxy.url, tmp_path, "slow")
    flagged = regload("compare", str(base.prefix), str(slow.prefix), *LIMITS)
    assert flagged.code == 1, flagged.output
    lines = flagged.stdout.splitlines()
    assert any(line.strip().startswith("REGRESSION: PULL image p99 +") for line in lines), flagged.stdout
    assert any("REGRESSION: GET /v2/<name>/blobs/<digest> p50" in line for line in lines), flagged.stdout
    assert "limits broken: " in lines[-1] and "PULL image p99" in lines[-1], lines[-1]
    assert "Traceback" not in flagged.output

    markdown = regload("compare", str(base.prefix), str(slow.prefix), *LIMITS, "--format", "markdown")
    assert markdown.code == 1 and markdown.stdout.startswith("## regload compare: ")
    assert "| PULL image |" in markdown.stdout and "❌ PULL image p99" in markdown.stdout

    data = regload("compare", str(base.prefix), str(slow.prefix), *LIMITS, "--json")
    assert data.code == 1 and data.json["ok"] is False
    pull = next(r for r in data.json["rows"] if r["row"] == "PULL image")
    assert pull["metrics"]["p50"]["change_pct"] > 100  # each pull is several requests, each 100 ms later


def test_a_bad_limit_or_a_missing_run_is_one_line(tmp_path):
    assert_clean_failure(regload("compare", str(tmp_path / "a"), str(tmp_path / "b")), 2, "no such results")
    bad = regload("compare", "x", "y", "--max-regression", "PULL image:p99:20%")
    assert_clean_failure(bad, 2, "invalid --max-regression", "a signed amount")
