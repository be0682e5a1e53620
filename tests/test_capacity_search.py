"""The capacity search on a fake system with a known knee (no Locust, no clock): doubling,
bisection, confirmation, stepping down after a failed confirmation, noisy steps; the verdict of a
step and what limited it; the options that set a search."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from regload.errors import UsageError
from regload.locust.options import settings_from
from regload.locust.thresholds import PercentileCheck
from regload.workload.capacity.limits import GeneratorHealth, explain_drops, lateness_bound_ms, users_needed
from regload.workload.capacity.search import BISECT, CONFIRM, DOUBLE, CapacitySearch
from regload.workload.capacity.steps import Measurement, RowWindow, Slo, judge
from tests.support.locust_inprocess import run_child

pytestmark = pytest.mark.unit


def run(search: CapacitySearch, passes) -> list[tuple[float, str]]:
    held = []
    while (step := search.next_step()) is not None:
        held.append((step.rate, step.purpose))
        search.record(passes(step.rate), "registry")
    return held


def test_doubles_then_bisects_then_confirms():
    search = CapacitySearch(start=1, precision=0.1)
    held = run(search, lambda rate: rate <= 20)
    assert held == [
        (1, DOUBLE), (2, DOUBLE), (4, DOUBLE), (8, DOUBLE), (16, DOUBLE), (32, DOUBLE),
        (24, BISECT), (20, BISECT), (22, BISECT), (20, CONFIRM),
    ]  # fmt: skip
    result = search.result
    assert result is not None and result.capacity == 20 and result.confirmed
    assert result.limited_by == "registry" and not result.lower_bound


@pytest.mark.parametrize("knee", [0.7, 1, 3, 37, 1000, 12345])
@pytest.mark.parametrize("precision", [0.05, 0.1, 0.25])
def test_lands_within_the_precision_below_any_knee(knee, precision):
    search = CapacitySearch(start=1, precision=precision)
    held = run(search, lambda rate: rate <= knee)
    result = search.result
    assert result is not None
    if knee < 1:
        assert result.capacity is None and not result.confirmed and held == [(1, DOUBLE)]
        assert "start rate 1/s failed" in result.reason
        return
    assert result.confirmed and knee / (1 + precision) <= result.capacity <= knee
    assert held[-1] == (result.capacity, CONFIRM)
    assert len(held) <= 2 * (knee.bit_length() + 8)


def test_a_failed_confirmation_steps_down_and_confirms_a_lower_rate():
    # 20 passes when first held, fails when held again: the search goes below it.
    seen: dict[float, int] = {}

    def passes(rate: float) -> bool:
        seen[rate] = seen.get(rate, 0) + 1
        return rate <= 18 or (rate == 20 and seen[rate] == 1)

    search = CapacitySearch(start=5, precision=0.1)
    held = run(search, passes)
    result = search.result
    assert result is not None and result.confirmed
    assert (20, CONFIRM) in held
    assert 18 / 1.1 <= result.capacity <= 18 and held[-1] == (result.capacity, CONFIRM)


def test_the_start_rate_failing_on_its_confirmation_is_no_capacity():
    search = CapacitySearch(start=4, precision=0.5)
    verdicts = iter([True, False, False, False])
    held = run(search, lambda rate: next(verdicts))
    assert held == [(4, DOUBLE), (8, DOUBLE), (6, BISECT), (4, CONFIRM)]
    assert search.result is not None and search.result.capacity is None
    assert "failed when held again" in search.result.reason


def test_noisy_steps_still_land_near_the_knee():
    # Around the knee a step passes with a probability falling from 1 to 0 over ±10 %.
    knee = 50.0

    def noisy(rng: random.Random):
        def passes(rate: float) -> bool:
            chance = min(1.0, max(0.0, (1.1 * knee - rate) / (0.2 * knee)))
            return rng.random() < chance

        return passes

    found = []
    for seed in range(200):
        search = CapacitySearch(start=1, precision=0.1)
        run(search, noisy(random.Random(seed)))
        assert search.result is not None
        if search.result.capacity is not None and search.result.confirmed:
            found.append(search.result.capacity)
    assert len(found) >= 190  # a confirmation may step below once or twice, never give up
    assert all(0.7 * 50 <= c <= 1.1 * 50 for c in found), sorted(found)[:5]
    assert sorted(found)[len(found) // 2] >= 0.85 * 50


def test_the_search_is_bounded_in_steps():
    search = CapacitySearch(start=1, precision=0.1, max_steps=5)
    held = run(search, lambda rate: True)
    assert len(held) == 5 and search.result is not None and not search.result.confirmed
    assert search.result.capacity == 16 and "not confirmed" in search.result.reason


def test_a_capacity_bounded_by_users_or_the_generator_is_a_lower_bound():
    search = CapacitySearch(start=1, precision=0.5)
    while (step := search.next_step()) is not None:
        search.record(step.rate <= 4, "users")
    assert search.result is not None and search.result.lower_bound and search.result.limited_by == "users"


# -- a step's verdict ---------------------------------------------------------------------------

P99 = PercentileCheck.parse("PULL image:p99<500")
SLO = Slo((P99,), fail_ratio=0.01)


@dataclass
class Window:
    offered: float = 10.0
    started: int = 100
    dropped: int = 0
    p99: float = 200.0
    failures: int = 0
    cpu: float = 0.3
    lateness: float = 2.0
    users: int = 20

    def measure(self, poisson: bool = False) -> Measurement:
        rows = (RowWindow("PULL", "image", self.started, self.failures, {50.0: self.p99 / 2, 99.0: self.p99}),)
        return Measurement(
            offered=self.offered,
            seconds=10.0,
            scheduled=self.started + self.dropped,
            started=self.started,
            dropped=self.dropped,
            health=GeneratorHealth((self.cpu,), self.lateness),
            rows=rows,
            users={"PULL": self.users},
            rates={"PULL": self.offered},
            poisson=poisson,
        )


BOUND = lateness_bound_ms([500])


def test_a_step_within_its_slo_passes():
    assert judge(Window().measure(), SLO, BOUND).passed


def test_a_breached_check_with_a_healthy_generator_is_the_registry():
    v = judge(Window(p99=900).measure(), SLO, BOUND)
    assert not v.passed and v.limited_by == "registry" and "p99 900 ms > 500 ms" in v.reasons[0]
    v = judge(Window(failures=5).measure(), SLO, BOUND)
    assert v.limited_by == "registry" and "failure ratio 0.0500" in v.reasons[0]


def test_drops_within_the_slo_are_the_users_and_say_how_many_are_needed():
    v = judge(Window(started=90, dropped=10, users=2, p99=400).measure(), SLO, BOUND)
    assert not v.passed and v.limited_by == "users"
    assert v.advice is not None and "needs about 4" in v.advice and "lower bound" in v.advice


def test_drops_with_a_breach_are_the_registry():
    assert judge(Window(dropped=10, p99=900).measure(), SLO, BOUND).limited_by == "registry"


def test_a_busy_or_late_generator_is_blamed_before_the_registry():
    v = judge(Window(p99=900, cpu=0.97).measure(), SLO, BOUND)
    assert v.limited_by == "generator" and "97% busy" in v.reasons[-1] and "--processes" in (v.advice or "")
    v = judge(Window(p99=900, lateness=80).measure(), SLO, BOUND)
    assert v.limited_by == "generator" and "lateness p99 80 ms" in v.reasons[-1]
    # A busy generator whose step passed is no verdict at all.
    assert judge(Window(cpu=0.97).measure(), SLO, BOUND).passed


def test_fewer_completions_than_arrivals_is_the_registry_queueing():
    window = Window(started=100)
    m = window.measure()
    # Every arrival started, 88 completed in the window: the registry's queue grew.
    rows = (RowWindow("PULL", "image", 88, 0, {50.0: 100.0, 99.0: 200.0}),)
    v = judge(Measurement(**{**m.__dict__, "rows": rows}), SLO, BOUND)
    assert not v.passed and v.limited_by == "registry"
    assert v.reasons == ("8.8/s completed, below 95% of the 10/s offered: the registry's queue grew",)


def test_arrivals_that_did_not_even_start_are_the_generator():
    v = judge(Window(started=90).measure(), SLO, BOUND)  # 9/s of 10/s started, nothing dropped
    assert not v.passed and v.limited_by == "generator" and "below 95%" in v.reasons[0]
    assert "the schedule fell behind its arrivals" in v.reasons
    # Poisson arrivals are allowed their noise: 3 σ of 100 expected.
    assert judge(Window(started=90).measure(poisson=True), SLO, BOUND).passed
    assert not judge(Window(started=60).measure(poisson=True), SLO, BOUND).passed


def test_no_completion_in_the_window_breaches_the_check():
    v = judge(Window(started=0, offered=0.01).measure(), SLO, BOUND)
    assert not v.passed and "none completed" in v.reasons[0]


def test_the_lateness_bound_follows_the_tightest_check_within_limits():
    assert lateness_bound_ms([]) == 100 and lateness_bound_ms([100]) == 25
    assert lateness_bound_ms([500, 2000]) == 50 and lateness_bound_ms([60_000]) == 100


def test_a_run_that_dropped_says_why():
    healthy = GeneratorHealth((0.4,), 3.0)
    line = explain_drops("PULL", 200, 1397, 2348, 60, 1800, healthy, 25)
    assert "dropped 1,397 of 2,348 (59.5%)" in line and "60 pull users" in line
    assert "needs about 360" in line and users_needed(200, 1800) == 360
    busy = GeneratorHealth((0.5, 0.95), 3.0)
    line = explain_drops("PULL", 200, 1397, 2348, 60, 1800, busy, 25)
    assert "a load process (of 2) was 95% busy" in line and "--processes" in line


# -- options -----------------------------------------------------------------------------------


class Options:
    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)


def test_a_search_needs_a_percentile_check():
    with pytest.raises(UsageError, match="needs an SLO: at least one --check-percentile"):
        settings_from(Options(find_capacity="pull"))
    settings = settings_from(Options(find_capacity="pull", check_percentile=["PULL image:p99<1000"]))
    c = settings.capacity
    assert (c.mode, c.start, c.precision, c.hold, c.settle) == ("pull", 1.0, 0.1, 30.0, 5.0)
    assert settings_from(Options()).capacity.mode is None


def test_mixed_takes_its_ratio_from_the_rates():
    check = ["PULL image:p99<1000"]
    c = settings_from(Options(find_capacity="mixed", pull_rate="9", push_rate="1", check_percentile=check)).capacity
    assert c.rates(20) == pytest.approx({"PULL": 18, "PUSH": 2})
    with pytest.raises(UsageError, match="ratio of pulls to pushes"):
        settings_from(Options(find_capacity="mixed", pull_rate="9", check_percentile=check))
    with pytest.raises(UsageError, match="leave out --pull-rate"):
        settings_from(Options(find_capacity="pull", pull_rate="9", check_percentile=check))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"capacity_start": "0"}, "--capacity-start must be above 0"),
        ({"capacity_precision": "150%"}, "between 0 and 100%"),
        ({"capacity_precision": "ten"}, "expected a share"),
        ({"capacity_hold": "5s", "capacity_settle": "5s"}, "must be shorter than --capacity-hold"),
        ({"find_capacity": "both"}, "choose off, pull, push, mixed"),
    ],
)
def test_bad_search_options_are_one_clear_line(values, message):
    with pytest.raises(UsageError, match=message):
        settings_from(Options(check_percentile=["PULL image:p99<1000"], **values))


def test_a_step_window_counts_only_the_searched_kinds_arrivals():
    # In a child: importing Locust patches the interpreter for gevent.
    window = run_child("tests.support.capacity_window")
    assert set(window["arrivals"]) == {"PULL"} and window["arrivals"]["PULL"]["started"] == 7, window
