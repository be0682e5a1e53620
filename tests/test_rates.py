"""The open model's schedule: rates, stages, and the arrival times they give (no Locust)."""

from __future__ import annotations

import math
import random

import pytest

from regload.errors import UsageError
from regload.workload.open_model import ArrivalCounts
from regload.workload.rates import ConstantRate, ShapeRate, Stages, arrival_times, expected_count, parse_rate

pytestmark = pytest.mark.unit


def take(iterator, until: float) -> list[float]:
    out = []
    for t in iterator:
        if t >= until:
            break
        out.append(t)
    return out


def test_parse_rates_and_stages():
    assert parse_rate("10", "--pull-rate") == ConstantRate(10.0)
    assert parse_rate(" 0.5 ", "--pull-rate") == ConstantRate(0.5)
    stages = parse_rate("30s:5,2m:50,1m:50,500ms:0", "--rate-stages")
    assert stages == Stages(((30.0, 5.0), (120.0, 50.0), (60.0, 50.0), (0.5, 0.0)))
    assert str(stages) == "30s:5,120s:50,60s:50,0.5s:0"
    for bad, needle in [
        ("fast", "expected arrivals per second"),
        ("-1", "between 0 and"),
        ("30s", "expected arrivals per second"),
        ("30s:5,2x:50", "duration '2x'"),
        ("30s:5,:50", "duration ''"),
        ("30s:5,nope", "expected DURATION:RATE"),
        ("nan", "between 0 and"),
    ]:
        with pytest.raises(UsageError, match=needle):
            parse_rate(bad, "--pull-rate")


def test_uniform_arrivals_are_computed_from_the_origin():
    times = take(arrival_times(ConstantRate(10), "uniform"), 100.0)
    assert len(times) == 1000
    assert all(t == pytest.approx(k / 10) for k, t in enumerate(times))  # k/rate: no drift


def test_poisson_arrivals_have_the_rate_and_exponential_gaps():
    times = take(arrival_times(ConstantRate(50), "poisson", rng=random.Random(7)), 200.0)
    assert len(times) == pytest.approx(10_000, rel=0.03)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    mean = sum(gaps) / len(gaps)
    assert mean == pytest.approx(1 / 50, rel=0.03)
    # Exponential: the share of gaps above the mean is e^-1.
    assert sum(g > mean for g in gaps) / len(gaps) == pytest.approx(math.exp(-1), abs=0.02)


def test_a_ramp_gives_the_integral_of_its_rate_and_ends_with_the_stages():
    stages = parse_rate("10s:20,10s:20,5s:0", "--rate-stages")
    times = list(arrival_times(stages, "uniform"))
    assert len(times) == 100 + 200 + 50  # the area under 0→20 (10 s), 20 (10 s), 20→0 (5 s)
    assert sum(t < 10 for t in times) == 100
    assert sum(10 <= t < 20 for t in times) == 200
    assert times == sorted(times) and times[-1] < 25
    # Within the ramp the k-th arrival is where ∫ rate = k: t = sqrt(k), for rate 2t.
    assert times[:50] == pytest.approx([math.sqrt(k) for k in range(50)])
    assert expected_count(stages, 10) == pytest.approx(100)
    assert expected_count(stages, 30) == pytest.approx(350)


def test_shares_of_workers_interleave_into_the_whole():
    whole = take(arrival_times(ConstantRate(30), "uniform"), 10.0)
    parts = [take(arrival_times(ConstantRate(30), "uniform", share=1 / 3, phase=i / 3), 10.0) for i in range(3)]
    assert sorted(t for part in parts for t in part) == pytest.approx(whole)
    assert [len(p) for p in parts] == [100, 100, 100]
    ramp = Stages(((10.0, 30.0),))
    halves = [list(arrival_times(ramp, "uniform", share=0.5, phase=i / 2)) for i in range(2)]
    assert sorted(halves[0] + halves[1]) == pytest.approx(list(arrival_times(ramp, "uniform")))


def test_a_shape_of_ones_own_is_read_once_a_second():
    class Steps:
        def tick(self, elapsed: float) -> float | None:
            return None if elapsed >= 4 else [5.0, 0.0, 10.0, 2.0][int(elapsed)]

    times = list(arrival_times(ShapeRate(Steps()), "uniform"))
    per_second = [sum(int(t) == s for t in times) for s in range(4)]
    assert per_second == [5, 0, 10, 2]


def test_lateness_percentiles_and_messages_merge():
    a, b = ArrivalCounts(), ArrivalCounts()
    for ms in [1.0] * 98 + [20.0, 300.0]:
        a.add_lateness(ms / 1000)
    b.merge(a.take())
    assert a.lateness == {} and a.started == 0
    assert b.percentile(0.5) == 1.0 and b.percentile(0.99) == 20.0 and b.percentile(1.0) == 300.0
    assert ArrivalCounts().percentile(0.99) is None


def test_a_scheduler_hands_arrivals_to_idle_users_drops_the_rest_and_follows_a_new_share():
    """gevent, no Locust: 100/s uniform; one user busy 30 ms per arrival takes one in three. When
    the process becomes one of two workers, its arrivals halve from then on."""
    import gevent

    from regload.workload.open_model import Arrivals, Share

    share, drops = Share(), []
    share.set(0, 1)
    arrivals = Arrivals("PULL", ConstantRate(100), "uniform", share, drops.append)

    def user() -> None:
        while True:
            arrivals.next()
            gevent.sleep(0.03)

    busy = gevent.spawn(user)
    arrivals.start()
    gevent.sleep(1.0)
    first = arrivals.total.scheduled
    share.set(0, 2)
    gevent.sleep(1.0)
    arrivals.stop()
    busy.kill()
    second = arrivals.total.scheduled - first
    assert first == pytest.approx(100, abs=3) and second == pytest.approx(50, abs=3)
    total = arrivals.total
    assert total.started + total.dropped == total.scheduled and len(drops) == total.dropped
    assert total.started == pytest.approx(total.scheduled / 3, rel=0.25)
    assert drops and set(drops) == {"PULL"}
