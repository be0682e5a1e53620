"""Each Locust environment has a run of its own (``regload.locust.run.LoadRun``): two of them in
one process share nothing by accident — not the settings, the pull pool, the schedules, the
token cache — and each pulls its own pool from its own registry."""

from __future__ import annotations

import pytest

from tests.support.two_runs import run_two

pytestmark = pytest.mark.flows


def test_two_environments_in_one_process_share_nothing():
    out = run_two()
    assert out["shared_objects"] == []
    for name, size in (("a", 2), ("b", 3)):
        run = out[name]
        assert len(run["pool"]) == size and all(image.startswith(f"two/{name}-") for image in run["pool"]), run
        assert run["rows"]["PULL image"][0] >= 10 and all(failed == 0 for _, failed in run["rows"].values()), run
        assert run["repositories"] and all(r.startswith(f"two/{name}-") for r in run["repositories"]), run
