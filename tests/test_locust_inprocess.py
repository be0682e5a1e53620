"""The Locust layer in one process: Locust's runner and regload's users over the in-memory
transport to a fake registry (``tests/support/locust_inprocess.py``), and a locustfile of one's
own importing from ``regload.locust.users`` run by the ``locust`` command against the real
registry."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.support.locust_inprocess import run_scenario
from tests.support.locust_run import Locust, Result, assert_clean
from tests.support.registries import RegistryFixture

PULL_ROWS = {"GET /v2/", "GET /v2/<name>/manifests/<reference>", "GET /v2/<name>/blobs/<digest>", "PULL image"}
PUSH_ROWS = {
    "HEAD /v2/<name>/blobs/<digest>",
    "POST /v2/<name>/blobs/uploads/",
    "PATCH /v2/<name>/blobs/uploads/<session>",
    "PUT /v2/<name>/blobs/uploads/<session>?digest=<digest>",
    "PUT /v2/<name>/manifests/<reference>",
    "PUSH image",
}
SMALL = ["--pull-pool-size", "2", "--pull-pool-layers", "2", "--pull-pool-layer-size", "4KiB"]
SMALL += ["--push-layers", "2", "--push-layer-size", "2KiB"]


@pytest.mark.flows
def test_pull_and_push_users_run_in_process_over_a_given_transport():
    """The users' ``transport_factory`` carries every request, the pool's seeding included: the
    fake registry holds the pool and the pushed images, behind bearer auth with a token per user."""
    out = run_scenario(
        {
            "argv": [*SMALL, "--token-cache", "user", "--registry-username", "user", "--registry-password", "secret"],
            "users": {"PullUser": 3, "PushUser": 1},
            "until": {"PULL image": 12, "PUSH image": 4},
            "auth": "bearer",
        }
    )
    assert out["reached"], out["rows"]
    assert PULL_ROWS | PUSH_ROWS | {"GET token"} <= set(out["rows"])
    assert all(row["failures"] == 0 for row in out["rows"].values()), out["errors"]
    pool = {m.split(":")[0] + ":" + m.split("-")[-1] for m in out["manifests"] if ":pool-" in m}  # pool-<spec>-i
    assert {"regload/load-0:0", "regload/load-1:1"} <= pool, out["manifests"]
    assert any(m.split(":")[1].startswith("push-") for m in out["manifests"])
    assert out["tokens"] >= 4  # one per user and one for seeding: --token-cache user
    assert "regload throughput: pulled" in out["stderr"] and "regload throughput: pushed" in out["stderr"]


@pytest.mark.flows
def test_registry_faults_are_counted_with_their_cause_and_the_run_goes_on():
    out = run_scenario(
        {
            # One layer: a pull then runs in its user's greenlet alone, and the stop cannot kill a
            # layer's greenlet between its injected 503 and the report of it.
            "argv": [*SMALL, "--pull-pool-layers", "1", "--check-fail-ratio", "0.0"],
            "users": {"PullUser": 2},
            "until": {"PULL image": 30},
            "fail_every": 5,
        }
    )
    assert out["reached"], out["rows"]
    assert out["blob_faults"] >= 5
    blob = out["rows"]["GET /v2/<name>/blobs/<digest>"]
    pulls = out["rows"]["PULL image"]
    assert blob["failures"] == out["blob_faults"] and pulls["failures"] == out["blob_faults"]
    assert pulls["requests"] > pulls["failures"]  # pulls went on after the faults
    assert out["errors"] == {
        "GET /v2/<name>/blobs/<digest>: HTTP 503 UNAVAILABLE": out["blob_faults"],
        "PULL image: HTTP 503 UNAVAILABLE": out["blob_faults"],
    }
    assert out["exit_code"] == 1  # --check-fail-ratio 0 breached


@pytest.mark.flows
def test_the_options_are_registered_by_importing_the_users_module_alone():
    """``parse_options`` knows regload's options only because ``regload.locust.users`` was imported
    (and with it the listeners): a bad value is refused by regload's own check at init."""
    with pytest.raises(AssertionError, match="--repos must be at least 1"):
        run_scenario({"argv": ["--repos", "0"], "users": {"PullUser": 1}, "until": {}})


OWN_LOCUSTFILE = """
    from locust import task

    from regload.locust.users import PullUser, PushUser


    class NightlyPull(PullUser):
        weight = 2


    class NightlyPush(PushUser):
        @task
        def push_one(self):
            self.push_unique()
"""


@pytest.mark.locust_run
def test_a_locustfile_of_ones_own_importing_from_the_users_module_runs_with_regloads_options(
    tmp_path: Path, registry_anon: RegistryFixture
):
    locustfile = tmp_path / "own.py"
    locustfile.write_text(textwrap.dedent(OWN_LOCUSTFILE))
    args = [
        *("--headless", "-u", "3", "-r", "10", "-t", "4s", "--host", registry_anon.url),
        *("--csv", str(tmp_path / "locust"), "--only-summary", "--check-fail-ratio", "0"),
        *("--pull-pool-size", "1", "--pull-pool-layer-size", "8KiB", "--push-layer-size", "4KiB"),
    ]
    process = Locust(args, tmp_path, locustfile=locustfile)
    try:
        code = process.wait(90)
    finally:
        process.kill()
    result = Result(code, process.stdout, process.stderr, tmp_path / "locust")
    assert_clean(result)
    rows = {f"{kind} {name}": int(row["Request Count"]) for (kind, name), row in result.stats().items()}
    assert (PULL_ROWS | PUSH_ROWS) <= set(rows), sorted(rows)
    assert rows["PULL image"] > 0 and rows["PUSH image"] > 0


@pytest.mark.flows
def test_the_open_model_drops_what_no_idle_user_can_take_and_times_pulls_from_their_arrival():
    """One user, 40 arrivals/s, a registry taking 50 ms a request (a pull of four: 200 ms): about
    5 pulls/s start, the rest are dropped and counted; none is delayed or queued."""
    out = run_scenario(
        {
            "argv": [*SMALL, "--pull-rate", "40", "--arrivals", "uniform"],
            "users": {"PullUser": 1},
            "until": {},
            "duration": 3,
            "delay": 0.05,
        }
    )
    [pull] = out["arrivals"]
    assert pull["operation"] == "PULL" and pull["schedule"] == "40/s"
    assert pull["started"] + pull["dropped"] == pull["scheduled"]
    # The schedule starts once the pool is seeded (through the same slow registry).
    assert pull["scheduled"] == pytest.approx(40 * pull["elapsed"], abs=2)
    # At most one pull per 200 ms (fewer on a loaded machine): the user is never given two at once.
    assert 3 * pull["elapsed"] <= pull["started"] <= 5 * pull["elapsed"] + 2, pull
    assert pull["dropped"] >= 30 * pull["elapsed"], pull
    dropped = out["rows"]["PULL dropped"]
    assert dropped["requests"] == dropped["failures"] == pull["dropped"]
    assert out["errors"]["PULL dropped: no idle user at the arrival time"] == pull["dropped"]
    assert out["image_times_ms"]["PULL"] >= 200  # from the arrival, its four 50 ms requests included
    # Handed over at once: an arrival queued behind a pull would wait for it (200 ms or more).
    assert pull["lateness_p99_ms"] < 150


@pytest.mark.flows
def test_without_a_rate_the_users_are_a_closed_loop():
    out = run_scenario({"argv": SMALL, "users": {"PullUser": 2}, "until": {"PULL image": 10}})
    assert out["arrivals"] == [] and "PULL dropped" not in out["rows"]
    assert "regload arrivals" not in out["stderr"]


@pytest.mark.flows
def test_an_arrival_shape_of_ones_own_sets_the_rate_second_by_second():
    out = run_scenario(
        {
            "argv": [*SMALL, "--arrivals", "uniform"],
            "users": {"PullUser": 4},
            "until": {},
            "duration": 4.5,
            "shape": [10, 0, 30, 5],
        }
    )
    [pull] = out["arrivals"]
    assert pull["schedule"] == "Steps"
    assert pull["started_per_second"] == [10, 0, 30, 5] and pull["dropped"] == 0, pull
