"""Pull popularity (regload.workload.popularity): parsing, Zipf and uniform picks against their expected
frequencies, and the cost of a Zipf pick over 10,000 images.

Frequency checks use 50,000 seeded picks. Per index, the count is binomial: its standard deviation
is sqrt(N p (1 - p)), and 4.5 of them bound every one of 100 indexes but with odds of about 1 in
1,500 for a correct picker. The aggregate is Pearson's chi-square against the 99.9th percentile of
its distribution (Wilson-Hilferty approximation); the same statistic is shown to reject a nearby
wrong exponent, so the check has teeth.
"""

import math
import random
from collections import Counter
from statistics import NormalDist

import pytest

from regload.errors import UsageError
from regload.workload.popularity import UNIFORM, Uniform, Zipf, parse_popularity

pytestmark = pytest.mark.unit

PICKS = 50_000


def counts(popularity, n, picks=PICKS, seed=14):
    rng = random.Random(seed)
    tally = Counter(popularity.pick(rng, n) for _ in range(picks))
    return [tally[i] for i in range(n)]


def zipf_probabilities(s, n):
    weights = [(k + 1) ** -s for k in range(n)]
    total = sum(weights)
    return [w / total for w in weights]


def chi_square(observed, probabilities):
    total = sum(observed)
    return sum((o - total * p) ** 2 / (total * p) for o, p in zip(observed, probabilities, strict=True))


def chi_square_limit(df, level=0.999):
    """The ``level`` quantile of chi-square with ``df`` degrees of freedom (Wilson-Hilferty)."""
    z = NormalDist().inv_cdf(level)
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def assert_frequencies(observed, probabilities):
    total = sum(observed)
    for i, (o, p) in enumerate(zip(observed, probabilities, strict=True)):
        sd = math.sqrt(total * p * (1 - p))
        assert abs(o - total * p) <= 4.5 * sd, f"index {i}: {o} picks, {total * p:.0f} expected"
    assert chi_square(observed, probabilities) < chi_square_limit(len(observed) - 1)


@pytest.mark.parametrize(
    "text, expected",
    [("uniform", UNIFORM), (" Uniform ", UNIFORM), ("zipf:1.1", Zipf(1.1)), ("ZIPF: 2", Zipf(2.0))],
)
def test_parse(text, expected):
    assert parse_popularity(text, "--pull-popularity") == expected


def test_descriptions_read_back():
    assert str(UNIFORM) == "uniform"
    for text in ("zipf:1.1", "zipf:2", "zipf:0.75"):
        assert str(parse_popularity(text, "x")) == text


@pytest.mark.parametrize(
    "text, cause",
    [
        ("", "expected uniform or zipf:EXPONENT"),
        ("zipf", "expected uniform or zipf:EXPONENT"),
        ("pareto:1", "expected uniform or zipf:EXPONENT"),
        ("zipf:", "'' is not a number"),
        ("zipf:steep", "'steep' is not a number"),
        ("zipf:0", "the exponent must be a number above 0"),
        ("zipf:-1", "the exponent must be a number above 0"),
        ("zipf:nan", "the exponent must be a number above 0"),
        ("zipf:inf", "the exponent must be a number above 0"),
    ],
)
def test_bad_text_names_the_option_and_the_cause(text, cause):
    with pytest.raises(UsageError) as info:
        parse_popularity(text, "--pull-popularity")
    assert str(info.value).startswith(f"invalid --pull-popularity {text!r}: ") and cause in str(info.value)


def test_zipf_picks_follow_the_expected_frequencies():
    n, s = 100, 1.1
    observed = counts(Zipf(s), n)
    expected = zipf_probabilities(s, n)
    assert_frequencies(observed, expected)
    assert observed[0] > 0.2 * PICKS  # index 0 is the most popular: ~23 % of pulls
    # The check can fail: the same counts are far from the frequencies of a nearby exponent.
    assert chi_square(observed, zipf_probabilities(1.0, n)) > 2 * chi_square_limit(n - 1)
    assert chi_square(observed, [1 / n] * n) > 10 * chi_square_limit(n - 1)


def test_zipf_probability_helper_agrees():
    z = Zipf(1.1)
    assert [z.probability(k, 100) for k in (0, 50, 99)] == pytest.approx(
        [zipf_probabilities(1.1, 100)[k] for k in (0, 50, 99)]
    )


def test_uniform_picks_are_one_in_n():
    n = 20
    observed = counts(Uniform(), n)
    assert_frequencies(observed, [1 / n] * n)
    assert chi_square(observed, zipf_probabilities(0.2, n)) > 2 * chi_square_limit(n - 1)


def test_zipf_over_10000_images_computes_each_weight_once():
    z = Zipf(1.1)
    rng = random.Random(1)
    picks = [z.pick(rng, 10_000) for _ in range(20_000)]
    assert z.weights_computed == 10_000  # one table, not one per pick
    assert 0 <= min(picks) and max(picks) < 10_000
    # A pool that shrinks and grows (pushed images join it) reuses the table: smaller n are its
    # prefix, and growing computes only the new ranks.
    for n in (9_000, 10_000, 1, 5_000, 10_000):
        assert all(0 <= z.pick(rng, n) < n for _ in range(100))
    assert z.weights_computed == 10_000
    growing = Zipf(1.1)
    for n in range(1, 3_001):
        growing.pick(rng, n)
    assert growing.weights_computed == 3_000  # not 3000 * 3001 / 2


def test_zipf_over_a_prefix_matches_a_fresh_one():
    """Picks among n from a table built for a larger n are those of a table built for n."""
    big, small = Zipf(1.3), Zipf(1.3)
    big.pick(random.Random(0), 1000)
    assert counts(big, 50, picks=2000, seed=5) == counts(small, 50, picks=2000, seed=5)


class AlmostOne(random.Random):
    def random(self):
        return 1 - 2**-53  # the largest float random() can return


def test_picks_stay_below_n_at_the_edge():
    z = Zipf(1.1)
    for n in (1, 2, 3, 7, 100, 10_000):
        assert z.pick(AlmostOne(), n) == n - 1
        assert z.pick(random.Random(n), n) < n
    assert Zipf(2.0).pick(random.Random(1), 1) == UNIFORM.pick(random.Random(1), 1) == 0


def test_nothing_to_pick_from():
    for popularity in (Zipf(1.1), UNIFORM):
        with pytest.raises(ValueError):
            popularity.pick(random.Random(1), 0)


def test_picks_are_reproducible_from_the_seed():
    assert counts(Zipf(1.1), 100, picks=1000, seed=7) == counts(Zipf(1.1), 100, picks=1000, seed=7)
