"""The capacity search against a real docker-registry behind a proxy of known capacity
(``LimitProxy``: at most 3 requests at once, each held 50 ms): the search lands within 15 % of
the pull rate a saturating closed loop measures through the same proxy, and blames the registry;
with too few users it blames the users and says how many the rate needs; with its process
pinned at full CPU it blames the generator; two workers give the answer one process gives. A
plain open-model run that drops arrivals says why."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regload.local_registry import free_port
from tests.support.limit_proxy import LimitProxy
from tests.support.locust_run import TEST_LOCUSTFILES, Locust, Result, headless, run_locust

pytestmark = pytest.mark.locust_run

SLOTS, HOLD = 3, 0.05  # ≤ 60 requests/s: about 20 pulls/s of a one-layer image (3 GETs each)
SLO = ("--check-percentile", "PULL image:p99<2000")
TOLERANCE = 0.15


@pytest.fixture(scope="module")
def proxy(registry_anon: Any) -> Iterator[LimitProxy]:
    with LimitProxy(registry_anon.url, slots=SLOTS, hold=HOLD) as p:
        yield p


@pytest.fixture(scope="module")
def saturated(proxy: LimitProxy, tmp_path_factory: pytest.TempPathFactory) -> float:
    """Pulls per second through the proxy when 24 users pull back to back (a closed loop): its
    capacity measured directly, from the second-by-second history after a 3 s ramp."""
    workdir = tmp_path_factory.mktemp("saturation")
    args = headless(proxy.url, workdir / "locust", "--csv-full-history", "PullUser", users=24, run_time="12s")
    result = run_locust(args, workdir, timeout=90)
    assert result.code == 0, result.output[-4000:]
    rows = [(int(r["Timestamp"]), int(r["Total Request Count"])) for r in result.history("PULL", "image")]
    rows = [(t, n) for t, n in rows if n > 0]
    start = next(i for i, (t, _) in enumerate(rows) if t >= rows[0][0] + 3)
    (t0, n0), (t1, n1) = rows[start], rows[-2]
    assert t1 - t0 >= 5, rows
    rate = (n1 - n0) / (t1 - t0)
    assert 10 <= rate <= 24, rows  # ≤ 60 requests/s, 3 per pull
    return rate


def search(
    proxy: LimitProxy, workdir: Path, *args: str, users: int = 40, mode: str = "pull", name: str = "locust"
) -> Result:
    options = headless(proxy.url, workdir / name, users=users, run_time="3m")
    options += [
        *("--find-capacity", mode, "--capacity-start", "4", "--capacity-hold", "5s", "--capacity-settle", "1.5s"),
        *("--arrivals", "uniform", *SLO),
        *args,
    ]
    return run_locust(options, workdir, timeout=240, name=name)


def capacity(result: Result) -> dict[str, Any]:
    path = Path(f"{result.prefix}_capacity.json")
    assert path.exists(), result.output[-4000:]
    answer: dict[str, Any] = json.loads(path.read_text())
    return answer


def final_line(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("regload capacity: ")]
    assert lines, result.output[-4000:]
    return lines[-1]


def test_the_search_finds_the_known_capacity_and_blames_the_registry(proxy, saturated, tmp_path):
    result = search(proxy, tmp_path, "PullUser")
    answer = capacity(result)
    assert result.code == 0, result.output[-4000:]
    assert answer["confirmed"] and answer["limited_by"] == "registry" and not answer["lower_bound"], answer
    assert answer["capacity"] == pytest.approx(saturated, rel=TOLERANCE), (answer["capacity"], saturated)
    steps = answer["steps"]
    assert [s["purpose"] for s in steps[:3]] == ["double", "double", "double"] and steps[-1]["purpose"] == "confirm"
    assert steps[-1]["rate"] == answer["capacity"] and steps[-1]["verdict"] == "pass"
    above = [s for s in steps if s["rate"] > answer["capacity"]]
    assert above and all(s["verdict"] == "fail" for s in above)
    for step in steps:  # every step's window: its rate, what it achieved, the checked row
        assert step["window"]["seconds"] == pytest.approx(3.5, abs=0.5)
        [row] = [r for r in step["rows"] if (r["type"], r["name"]) == ("PULL", "image")]
        assert row["count"] > 0 and set(row["percentiles_ms"]) == {"p50", "p99"}
    line = final_line(result)
    assert f"{answer['capacity']:.4g} pulls/s (confirmed), limited by the registry; at " in line
    assert "the registry's queue grew" in line or "PULL image: p99" in line  # why the step above failed
    table = Path(f"{result.prefix}_capacity.csv").read_text().splitlines()
    assert table[0].startswith("Step,Purpose,Offered rate,Achieved rate") and len(table) == len(steps) + 1
    assert "Traceback" not in result.stderr and "ERROR" not in result.stderr, result.stderr[-3000:]


def test_too_few_users_are_blamed_with_the_users_the_rate_needs(proxy, tmp_path):
    result = search(proxy, tmp_path, "PullUser", users=2)
    answer = capacity(result)
    assert answer["limited_by"] == "users" and answer["lower_bound"], answer
    failed = [s for s in answer["steps"] if s["verdict"] == "fail"]
    assert failed and all(s["limited_by"] == "users" for s in failed)
    assert "needs about" in failed[0]["advice"] and "2 pull users" in failed[0]["advice"]
    line = final_line(result)
    assert "at least" in line and "a lower bound, the users limited it" in line and "-u" in line


def test_a_process_pinned_at_full_cpu_is_blamed_as_the_generator(proxy, tmp_path):
    options = headless(proxy.url, tmp_path / "locust", users=21, run_time="3m")
    options += [
        *("--find-capacity", "pull", "--capacity-start", "4", "--capacity-hold", "4s", "--capacity-settle", "1s"),
        *("--arrivals", "uniform", *SLO, "PullUser", "CpuBurner"),
    ]
    process = Locust(options, tmp_path, locustfile=TEST_LOCUSTFILES / "cpu_burner.py")
    try:
        process.wait(240)
    finally:
        process.kill()
    result = Result(process.process.returncode, process.stdout, process.stderr, tmp_path / "locust")
    answer = capacity(result)
    assert answer["limited_by"] == "generator" and answer["lower_bound"], answer
    failed = [s for s in answer["steps"] if s["verdict"] == "fail"]
    assert failed and max(failed[0]["cpu"]) > 0.9, failed
    assert "--processes" in failed[0]["advice"]
    assert "the generator limited it, not the registry" in final_line(result)


def test_two_workers_find_what_one_process_finds(proxy, saturated, tmp_path):
    result = search(proxy, tmp_path, "--processes", "2", "PullUser")
    answer = capacity(result)
    assert result.code == 0, result.output[-4000:]
    assert answer["confirmed"] and answer["limited_by"] == "registry", answer
    assert answer["capacity"] == pytest.approx(saturated, rel=TOLERANCE), (answer["capacity"], saturated)
    assert all(len(s["cpu"]) == 2 for s in answer["steps"])  # each step measured on both workers


def test_a_mixed_search_keeps_the_ratio_of_pulls_to_pushes(proxy, tmp_path):
    args = ("--pull-rate", "3", "--push-rate", "1", "--check-percentile", "PUSH image:p99<4000")
    result = search(proxy, tmp_path, *args, "PullUser", "PushUser", mode="mixed")
    answer = capacity(result)
    assert answer["mode"] == "mixed" and answer["unit"] == "operations/s", answer
    assert answer["confirmed"] and answer["limited_by"] == "registry", final_line(result)
    # ≤ 60 requests/s; a pull takes 4, a push of two small layers ~13: 3 pulls and a push, ~25.
    assert 4 <= answer["capacity"] <= 12, answer["capacity"]
    for step in answer["steps"]:
        assert step["rates"]["PULL"] == pytest.approx(3 * step["rates"]["PUSH"])
        assert {(r["type"], r["name"]) for r in step["rows"]} == {("PULL", "image"), ("PUSH", "image")}
    assert "operations/s (confirmed), limited by the registry" in final_line(result)


def test_a_worker_joining_mid_search_has_its_step_held_again(proxy, tmp_path):
    port = str(free_port())
    options = headless(proxy.url, tmp_path / "master", users=40, run_time="3m")
    options += [
        *("--master", "--expect-workers", "1", "--master-bind-host", "127.0.0.1", "--master-bind-port", port),
        *("--find-capacity", "pull", "--capacity-start", "4", "--capacity-hold", "5s", "--capacity-settle", "1.5s"),
        *("--arrivals", "uniform", *SLO, "PullUser"),
    ]
    worker = ["--worker", "--master-host", "127.0.0.1", "--master-port", port]
    master = Locust(options, tmp_path, name="master")
    workers = [Locust(worker, tmp_path, name="worker1")]
    try:
        master.wait_for("regload capacity: searching", timeout=60)
        time.sleep(2)  # into the first step
        workers.append(Locust(worker, tmp_path, name="worker2"))
        master.wait(240)
    finally:
        for process in (master, *workers):
            process.kill()
    result = Result(master.process.returncode, master.stdout, master.stderr, tmp_path / "master")
    assert "held again: the load processes changed while it ran (1 before, 2 after" in result.stderr, result.stderr
    answer = capacity(result)
    assert answer["confirmed"] and answer["limited_by"] == "registry", final_line(result)
    # Every step kept was measured by one process, or by both: none mixes the two shares.
    counts = [len(step["cpu"]) for step in answer["steps"]]
    assert counts[-1] == 2 and counts == sorted(counts), counts
    assert "Traceback" not in result.stderr + "".join(w.stderr for w in workers)


def test_an_open_model_run_that_drops_says_why(proxy, tmp_path):
    started = time.monotonic()
    args = headless(proxy.url, tmp_path / "locust", "--pull-rate", "30", "PullUser", users=2, run_time="6s")
    result = run_locust(args, tmp_path, timeout=60)
    assert time.monotonic() - started < 60
    [line] = [line for line in result.stderr.splitlines() if "dropped" in line and "busy" in line]
    assert line.startswith("regload arrivals: PULL dropped ") and "every one of the 2 pull users was busy" in line
    assert "the rate needs about" in line and "run with more users (-u" in line
