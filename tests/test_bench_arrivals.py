"""bench/arrivals.py (the open model's scheduler) runs in its --short mode and prints its figures.

No timing is asserted (CI machines vary): only that every leg ran end to end — the bare gevent
timer, regload's scheduler handing off to idle greenlets, the open model under Locust against
nginx (uniform and poisson), the closed loop beside it and k6's constant-arrival-rate (bare and
verifying sha256; skipped with a line saying so when k6 is not installed) — and that the ratios
were printed.
"""

from __future__ import annotations

import re

import pytest

from tests.test_bench_per_request import K6_SKIPPED, NUMBER, needs_nginx, run_bench

pytestmark = pytest.mark.bench

LATENESS = rf"lateness p50\s+{NUMBER} ms p99\s+{NUMBER} ms"


@needs_nginx
def test_arrivals_short() -> None:
    out = run_bench("arrivals.py", timeout=300)
    rate = rf"target\s+{NUMBER}/s\s+achieved\s+{NUMBER}/s \({NUMBER}×\)"
    counts = r"\d+ started, \d+ dropped of \d+ \(\d+ due\)"
    for label in (
        r"bare gevent timer \(uniform\)",
        r"Arrivals → \d+ idle \(uniform\)",
        r"Arrivals → \d+ idle \(poisson\)",
    ):
        assert re.search(rf"{label}\s+{rate}\s+{LATENESS}\s+{counts}\s+{NUMBER} µs CPU/arrival", out), out
    for kind in ("uniform", "poisson"):
        assert re.search(rf"open model \({kind}\)\s+{rate}\s+{LATENESS}\s+{counts}", out), out
        assert re.search(rf"open {kind}: achieved / target\s+{NUMBER}×", out), out
        assert re.search(rf"open {kind}: lateness p99 / goal\s+{NUMBER}×", out), out
        assert re.search(rf"open {kind}: dropped\s+\d+", out), out
        assert re.search(rf"open {kind} / closed loop\s+{NUMBER}× pulls/s", out), out
        assert re.search(rf"open {kind}: lateness p99 / the floors\s+({NUMBER}×|n/a) the bare gevent timer's", out), out
    pulls = rf"{NUMBER} pulls/s\s+PULL image mean\s+{NUMBER} ms p99\s+({NUMBER} ms|-)\s+\(\d+ pulls\)"
    assert len(re.findall(rf"^\s+{pulls}\s+{NUMBER} µs CPU/pull", out, re.M)) == 2, out  # the open runs
    assert re.search(rf"^closed loop\s+{pulls}\s+{NUMBER} µs CPU/pull", out, re.M), out
    assert K6_SKIPPED not in out, "k6 is installed by ./dev setup (the bench extra): its legs must run"
    for label in ("sha256", "bare"):
        leg = rf"k6 \({label}\)\s+{rate}\s+iteration p99\s+{NUMBER} ms\s+\d+ started, \d+ dropped"
        cpu = rf"{NUMBER} µs CPU/arrival \({NUMBER} with start-up\)"
        assert re.search(rf"{leg}\s+{cpu}\s+\(\d+ requests, 0 failures\)", out), out
        assert re.search(rf"regload uniform / k6 {label}: CPU/arrival\s+{NUMBER}×", out), out
