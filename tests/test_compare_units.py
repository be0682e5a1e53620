"""``regload compare``'s pieces without a run: rows read from Locust's JSON and regload's files,
limits parsed and judged (a rise, a fall, absolute, every row), the words said about what got
worse, and the tables. Real runs compared: tests/test_compare.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from regload.compare.limits import judge, parse_limit
from regload.compare.report import as_json, compare, text_lines, worse
from regload.compare.runs import load_run, percentile
from regload.errors import UsageError

pytestmark = pytest.mark.unit


def entry(method: str, name: str, times: dict[int, int], failures: int = 0, seconds: float = 10.0) -> dict[str, Any]:
    total = sum(times.values()) + failures
    return {
        "method": method,
        "name": name,
        "num_requests": total,
        "num_failures": failures,
        "start_time": 1000.0,
        "last_request_timestamp": 1000.0 + seconds,
        "response_times": {str(ms): n for ms, n in times.items()},
    }


def write_run(prefix: Path, entries: list[dict[str, Any]], **extra: Any) -> str:
    Path(f"{prefix}.json").write_text(json.dumps(entries))
    for suffix, data in extra.items():
        Path(f"{prefix}_{suffix}.json").write_text(json.dumps(data))
    return str(prefix)


def test_percentiles_follow_locusts_rule():
    times = {str(ms): 1 for ms in range(1, 101)}
    assert percentile(times, 100, 0.5) == 51 and percentile(times, 100, 0.99) == 100  # as Locust's own
    assert percentile({}, 0, 0.5) is None


def test_rows_from_locust_and_regloads_files(tmp_path):
    prefix = write_run(
        tmp_path / "run",
        [entry("PULL", "image", {100: 90, 300: 10}, failures=2), entry("GET", "/v2/", {2: 50})],
        capacity={"capacity": 14.0, "confirmed": True, "limited_by": "registry", "lower_bound": False},
        registry=[
            {
                "endpoints": [
                    {"handler": "blob", "method": "get", "server_requests": 80, "server_p50_ms": 9, "server_p99_ms": 40}
                ],
                "process": {"cpu_cores_avg": 0.5, "rss_max_bytes": 64 * 2**20},
            }
        ],
        storms={"storms": [{"last_done_ms": 900, "amplification": 12.5, "failures": 0, "not_done": 0}]},
    )
    run = load_run(prefix + ".json")  # PREFIX.json or PREFIX: the same run
    pull = run.rows["PULL image"]
    assert pull == {"count": 102, "failures": 2, "fail_ratio": 2 / 102, "p50": 100, "p99": 300, "throughput": 10.2}
    assert run.rows["capacity"] == {"capacity": 14.0}
    assert run.rows["registry blob get"] == {"count": 80, "p50": 9, "p99": 40}
    assert run.rows["registry process"] == {"cpu_cores": 0.5, "rss_mib": 64}
    assert run.rows["storms"] == {"count": 1, "failures": 0, "complete_ms": 900, "amplification": 12.5}
    assert len(run.files) == 4


def test_limits_parse_and_judge(tmp_path):
    base = load_run(write_run(tmp_path / "base", [entry("PULL", "image", {100: 100})], capacity={"capacity": 20}))
    new = load_run(
        write_run(tmp_path / "new", [entry("PULL", "image", {130: 100}, failures=1)], capacity={"capacity": 17})
    )
    [p99] = judge(parse_limit("PULL image:p99:+20%"), base, new)
    assert not p99.passed and p99.why == "PULL image p99 +30.0% (100 → 130), beyond the +20% allowed"
    assert judge(parse_limit("PULL image:p99:+35%"), base, new)[0].passed
    [capacity] = judge(parse_limit("capacity:-10%"), base, new)
    assert not capacity.passed and "-15.0%" in capacity.why
    assert judge(parse_limit("capacity:-20%"), base, new)[0].passed
    [failures] = judge(parse_limit("PULL image:failures:+0"), base, new)
    assert not failures.passed and "+1 (0 → 1)" in failures.why  # absolute: from 0, no percentage
    assert [j.row for j in judge(parse_limit("*:p99:+10%"), base, new)] == ["PULL image"]


def test_bad_limits_and_missing_rows_are_one_line_errors(tmp_path):
    run = load_run(write_run(tmp_path / "run", [entry("PULL", "image", {100: 10})]))
    for text, message in (
        ("PULL image:p99", "expected ROW:METRIC:+PCT%"),
        ("PULL image:p42:+10%", "unknown metric 'p42'"),
        ("PULL image:p99:20%", "a signed amount"),
        ("PULL image:p99:+x%", "a signed amount"),
    ):
        with pytest.raises(UsageError, match=re.escape(message)):
            parse_limit(text)
    with pytest.raises(UsageError, match="neither run has a row 'PULL imag'; did you mean 'PULL image'"):
        judge(parse_limit("PULL imag:p99:+10%"), run, run)
    with pytest.raises(UsageError, match="no such results"):
        load_run(str(tmp_path / "absent"))
    Path(tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(UsageError, match="not JSON"):
        load_run(str(tmp_path / "junk"))
    Path(tmp_path / "other.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(UsageError, match="not Locust's --json-file output"):
        load_run(str(tmp_path / "other"))


def test_a_row_gone_from_the_new_run_breaks_its_limit(tmp_path):
    base = load_run(write_run(tmp_path / "base", [entry("PULL", "image", {100: 10}), entry("PUSH", "image", {9: 9})]))
    new = load_run(write_run(tmp_path / "new", [entry("PUSH", "image", {9: 9})]))
    [j] = judge(parse_limit("PULL image:p99:+10%"), base, new)
    assert not j.passed and "gone in the new one" in j.why


def test_the_report_says_what_got_worse_and_marks_broken_limits(tmp_path):
    base = load_run(write_run(tmp_path / "base", [entry("PULL", "image", {100: 50}), entry("GET", "/v2/", {2: 500})]))
    new = load_run(write_run(tmp_path / "new", [entry("PULL", "image", {150: 50}), entry("GET", "/v2/", {2: 500})]))
    comparison = compare(base, new, [parse_limit("PULL image:p99:+20%")])
    assert not comparison.ok
    said = worse(comparison)
    assert said[0].startswith("PULL image p") and "+50%" in said[0] and "noisy" in "".join(said)
    text = "\n".join(text_lines(comparison))
    assert "100 → 150 (+50%)" in text and "REGRESSION: PULL image p99 +50.0%" in text
    assert "1 of 1 limits broken: PULL image p99" in text
    markdown = text_lines(comparison, markdown=True)
    assert "| row | count | failures | fail_ratio | p50 | p99 | throughput |" in markdown
    assert any(line.startswith("| PULL image |") and "**100 → 150 (+50%)**" in line for line in markdown)
    data = as_json(comparison)
    assert data["ok"] is False and data["limits"][0]["change_pct"] == 50.0
    assert data["rows"][0]["metrics"]["p99"] == {"base": 100, "new": 150, "change_pct": 50.0}
