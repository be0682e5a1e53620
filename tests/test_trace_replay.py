"""TraceUser against the real registry: a generated IBM-format trace replayed at its recorded
times (scaled by --trace-speed), each record once, open-model, after a warm-up outside the stats."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from regload.local_registry import LocalRegistry, free_port
from regload.workload.trace.records import load_trace
from tests.support.cli import regload
from tests.support.locust_run import TEST_LOCUSTFILES, Locust, Result, assert_clean

pytestmark = pytest.mark.locust_run

# The endpoint rows each trace operation sends (a PUT of a blob is POST, PATCH, PUT).
ROWS = {
    "GET manifest": [("GET", "/v2/<name>/manifests/<reference>")],
    "GET blob": [("GET", "/v2/<name>/blobs/<digest>")],
    "PUT manifest": [("PUT", "/v2/<name>/manifests/<reference>")],
    "PUT blob": [
        ("POST", "/v2/<name>/blobs/uploads/"),
        ("PATCH", "/v2/<name>/blobs/uploads/<session>"),
        ("PUT", "/v2/<name>/blobs/uploads/<session>?digest=<digest>"),
    ],
}


def synth(path: Path, *args: str) -> Path:
    result = regload("trace", "synth", str(path), "--blob-size", "4KiB-64KiB", *args)
    assert result.code == 0, result.output
    return path


def replay(host: str, tmp_path: Path, name: str, *args: str, users: int = 20, run_time: int = 20) -> Result:
    times = tmp_path / f"{name}-times.json"
    argv = [
        *("--headless", "-u", str(users), "-r", str(users), "-t", f"{run_time}s", "--host", host),
        *("--csv", str(tmp_path / name), "--json-file", str(tmp_path / name)),
        *args,
        "TraceUser",
    ]
    process = Locust(
        argv,
        tmp_path,
        name=name,
        env={"REGLOAD_TEST_TRACE_TIMES": str(times)},
        locustfile=TEST_LOCUSTFILES / "trace_times.py",
    )
    try:
        code = process.wait(run_time + 90)
    finally:
        process.kill()
    return Result(code, process.stdout, process.stderr, tmp_path / name)


@pytest.fixture
def registry(tmp_path):
    registry = LocalRegistry(storage_dir=tmp_path / "storage").start()
    try:
        yield registry
    finally:
        registry.stop()


def test_a_trace_replayed_twice_as_fast_sends_every_request_once_in_half_the_time(registry, tmp_path):
    trace_file = synth(tmp_path / "trace.json", "--requests", "240", "--duration", "12s", "--repos", "6")
    trace = load_trace([str(trace_file)])
    mix = Counter(f"{r.method} {r.kind}" for r in trace.records)
    assert sum(mix.values()) == 240 and all(mix[op] > 0 for op in ROWS), mix
    assert len({r.repository for r in trace.records}) == 6

    result = replay(registry.url, tmp_path, "run", "--trace", str(trace_file), "--trace-speed", "2")
    assert_clean(result)
    stats = result.stats()
    for op, rows in ROWS.items():
        assert int(stats[("TRACE", op)]["Request Count"]) == pytest.approx(mix[op], rel=0.02), op
        for row in rows:
            # Endpoint rows count the replay only: the warm-up is outside the stats.
            assert int(stats[row]["Request Count"]) == pytest.approx(mix[op], rel=0.02), (op, row)
    arrivals = {row["operation"]: row for row in json.loads(Path(f"{result.prefix}_arrivals.json").read_text())}
    assert arrivals["TRACE"]["started"] == 240 and arrivals["TRACE"]["dropped"] == 0, arrivals

    times = json.loads((tmp_path / "run-times.json").read_text())
    gets = sorted(t for op in ("GET manifest", "GET blob") for t in times[op])
    recorded = [r.offset for r in trace.records if r.method == "GET"]
    expected = (max(recorded) - min(recorded)) / 2  # about 6 s: the trace's 12 s at speed 2
    assert 5.5 <= expected <= 6.0
    assert gets[-1] - gets[0] == pytest.approx(expected, abs=0.4)


def test_a_second_replay_finds_its_warm_up_in_the_registry(registry, tmp_path):
    """The warm-up asks before it pushes: a second run against the same registry uploads no blob
    it created the first time (distribution keeps blobs), and both runs pass."""
    trace_file = synth(tmp_path / "small.json", "--requests", "60", "--duration", "3s", "--mix", "get-blob=1")
    warm_ups = []
    for name in ("first", "second"):
        result = replay(registry.url, tmp_path, name, "--trace", str(trace_file), run_time=8)
        assert_clean(result)
        assert int(result.row("TRACE", "GET blob")["Request Count"]) == 60
        # The warm-up is outside the stats: the rows hold the trace's 60 blob GETs only.
        assert set(result.stats()) == {("GET", "/v2/<name>/blobs/<digest>"), ("TRACE", "GET blob")}
        warm_ups.append(re.search(r"trace warm-up done in [\d.]+ s: (.*)", result.stderr).group(1))
    first, second = warm_ups
    assert "blobs uploaded" in first and "found" not in first, first
    assert "uploaded" not in second and "mounted" not in second and "pushed" not in second, second
    assert "blobs found" in second, second


def logged(ms: int, method: str, uri: str, status: int, **extra: object) -> dict[str, object]:
    """A record as IBM's traces write it (their anonymised names; no ``?digest=`` on the commit)."""
    stamp = f"2017-06-20T00:00:{ms // 1000:02d}.{ms % 1000:03d}Z"
    fields = {"http.request.method": method, "http.request.uri": uri, "http.response.status": status}
    return {"timestamp": stamp, **fields, "http.response.written": 0, **extra}


def test_uploads_as_the_registry_logs_them_reach_the_registry_as_whole_uploads(registry, tmp_path):
    """A trace that writes its pushes as the registry's access log does (POST …/blobs/uploads/,
    PATCH and PUT …/uploads/<session>): each commit is one whole upload of a blob of its own, of
    the size its PATCH carried, else of --push-layer-size; its POST and PATCH are not sent again."""
    items = []
    for i in range(6):
        uploads = f"v2/u/r{i % 2}/blobs/uploads/"
        length = {"http.request.contentlength": 5000 + i} if i % 2 == 0 else {}
        items += [
            logged(i * 300, "POST", uploads, 202),
            logged(i * 300 + 100, "PATCH", f"{uploads}s{i}", 202, **length),
            logged(i * 300 + 200, "PUT", f"{uploads}s{i}", 201),
        ]
    trace_file = tmp_path / "logged.json"
    trace_file.write_text(json.dumps(items))

    result = replay(
        registry.url, tmp_path, "uploads", "--trace", str(trace_file), "--push-layer-size", "8KiB", run_time=6
    )
    assert_clean(result)
    stats = result.stats()
    assert set(stats) == {*ROWS["PUT blob"], ("TRACE", "PUT blob")}, set(stats)
    assert all(int(row["Request Count"]) == 6 for row in stats.values()), stats
    blobs = registry.storage_dir / "docker" / "registry" / "v2" / "blobs"
    assert sorted(data.stat().st_size for data in blobs.rglob("data")) == [5000, 5002, 5004, 8192, 8192, 8192]


def test_a_window_replays_only_its_part_of_the_trace(registry, tmp_path):
    trace_file = synth(tmp_path / "trace.json", "--requests", "120", "--duration", "12s")
    inside = sum(1 for r in load_trace([str(trace_file)]).records if 4 <= r.offset <= 8)
    result = replay(
        registry.url,
        tmp_path,
        "window",
        "--trace",
        str(trace_file),
        "--trace-window",
        "4-8",
        "--trace-speed",
        "4",
        run_time=8,
    )
    assert_clean(result)
    arrivals = {row["operation"]: row for row in json.loads(Path(f"{result.prefix}_arrivals.json").read_text())}
    assert arrivals["TRACE"]["started"] == inside


def test_a_missing_trace_file_stops_the_run_with_one_clear_line(registry, tmp_path):
    result = replay(registry.url, tmp_path, "missing", "--trace", str(tmp_path / "nope.json"), run_time=3)
    assert result.code != 0
    assert "nope.json" in result.stderr and "Traceback" not in result.stderr, result.stderr[-3000:]


def test_two_workers_share_the_records_of_a_trace(registry, tmp_path):
    """Worker i of n replays records i, i + n, …: every record once in all, none twice."""
    trace_file = synth(tmp_path / "trace.json", "--requests", "120", "--duration", "6s")
    port = free_port()
    trace_args = ["--trace", str(trace_file)]
    master_args = ["--master", "--expect-workers", "2", "--expect-workers-max-wait", "30"]
    master_args += ["--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)]
    master = Locust(
        [
            *("--headless", "-u", "20", "-r", "20", "-t", "15s", "--host", registry.url),
            *("--csv", str(tmp_path / "master"), "--json-file", str(tmp_path / "master")),
            *master_args,
            *trace_args,
            "TraceUser",
        ],
        tmp_path,
        name="master",
    )
    # A worker needs --trace for locustfile.py to offer TraceUser; the master's options reach it.
    worker_args = ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port), *trace_args]
    workers = [Locust(worker_args, tmp_path, name=f"worker{i}") for i in (1, 2)]
    try:
        code = master.wait(90)
        worker_codes = [w.wait(30) for w in workers]
    finally:
        for process in (master, *workers):
            process.kill()
    result = Result(code, master.stdout, master.stderr, tmp_path / "master")
    assert_clean(result)
    assert worker_codes == [0, 0], [w.output[-3000:] for w in workers]
    trace = load_trace([str(trace_file)])
    stats = result.stats()
    total = sum(int(stats[("TRACE", op)]["Request Count"]) for op in ROWS if ("TRACE", op) in stats)
    assert total == len(trace.records) == 120
    arrivals = {row["operation"]: row for row in json.loads(Path(f"{result.prefix}_arrivals.json").read_text())}
    assert arrivals["TRACE"]["started"] == 120 and arrivals["TRACE"]["dropped"] == 0, arrivals
    for worker in workers:
        assert re.search(r"trace warm-up done in", worker.stderr), worker.output[-3000:]
