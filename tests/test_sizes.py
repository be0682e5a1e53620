"""Layer size distributions (regload.workload.sizes): every syntax, its errors, and the presets against the
percentiles their papers publish.

Tolerances on fractions of 10,000 seeded draws: a fraction's binomial standard deviation is
sqrt(p(1-p)/n) <= 0.005, so 0.02 is four of them. A correct distribution passes with any seed but
with odds of about 1 in 15,000; a preset whose point is off by 3 percentage points or more fails.
"""

import math
import random
from bisect import bisect_left
from statistics import NormalDist

import pytest

from regload.errors import UsageError
from regload.units import parse_size
from regload.workload.sizes import (
    DEFAULT_MAX,
    PRESETS,
    Empirical,
    Fixed,
    LogNormal,
    Uniform,
    format_size,
    parse_size_distribution,
)

pytestmark = pytest.mark.unit

N = 10_000
TOL = 0.02  # four binomial standard deviations at n = 10,000 (module docstring)
MB = 10**6


def draws(dist, n=N, seed=14):
    rng = random.Random(seed)
    return sorted(dist.sample(rng) for _ in range(n))


def fraction_below(sorted_sizes, size):
    return bisect_left(sorted_sizes, size) / len(sorted_sizes)


def parse(text):
    return parse_size_distribution(text, "--push-layer-size")


# Syntax


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1MiB", Fixed(1 << 20)),
        (" 4096 ", Fixed(4096)),
        ("0", Fixed(0)),
        ("1MiB-20MiB", Uniform(1 << 20, 20 << 20)),
        ("1.5KB-2KB", Uniform(1500, 2000)),
        ("7KiB-7KiB", Uniform(7 << 10, 7 << 10)),
        ("lognormal:median=4MB,p90=63MB", LogNormal(4 * MB, 63 * MB, DEFAULT_MAX)),
        ("LogNormal: median = 4MB , p90=63MB, max=2GiB", LogNormal(4 * MB, 63 * MB, 2 << 30)),
        ("lognormal:p90=1GB,median=10MB,max=5GB", LogNormal(10 * MB, 1000 * MB, 5000 * MB)),
        ("ibm-fast18", PRESETS["ibm-fast18"]),
        ("DockerHub-2019", PRESETS["dockerhub-2019"]),
    ],
)
def test_every_syntax_parses(text, expected):
    assert parse(text) == expected


def test_descriptions_are_readable():
    assert str(parse("1MiB")) == "1MiB"
    assert str(parse("1MiB-20MiB")) == "uniform(1MiB-20MiB)"
    assert str(parse("lognormal:median=4MB,p90=63MB")) == "lognormal(median=4MB,p90=63MB,max=2GiB)"
    assert str(PRESETS["dockerhub-2019"]) == "dockerhub-2019: lognormal(median=4MB,p90=63MB,max=2GiB)"
    assert str(PRESETS["ibm-fast18"]) == "ibm-fast18: percentiles(0%:1KB,65%:1MB,80%:10MB,99%:500MB,100%:2GiB)"


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1024, 1500, 4 * MB, 63 * MB, 1 << 20, 2 << 30, 10**9, 12345678])
def test_format_size_reads_back(size):
    assert parse_size(format_size(size)) == size


@pytest.mark.parametrize(
    "text, cause",
    [
        ("", "expected SIZE (1MiB), MIN-MAX"),
        ("lots", "expected SIZE (1MiB), MIN-MAX"),
        ("4KiB-1KiB", "the maximum is below the minimum"),
        ("1MiB-lots", "'lots' is not a size"),
        ("-5MB", "'' is not a size"),
        ("1MiB-2MiB-3MiB", "'2MiB-3MiB' is not a size"),
        ("gamma:k=2", "unknown kind 'gamma'"),
        ("lognormal:median=4MB", "lognormal needs p90"),
        ("lognormal:", "lognormal needs median and p90"),
        ("lognormal:median=4MB,p90=1MB", "p90 must be above the median"),
        ("lognormal:median=0,p90=1MB", "the median must be above 0"),
        ("lognormal:median=4MB,p90=63MB,max=10MB", "max must be at least p90"),
        ("lognormal:median=4MB,p90=63MB,p99=1GB", "unknown key 'p99'"),
        ("lognormal:median=4MB,median=5MB,p90=63MB", "median given twice"),
        ("lognormal:median", "'median' is not key=SIZE"),
        ("lognormal:median=big,p90=63MB", "'big' is not a size"),
        ("empirical:", "empirical needs a file"),
    ],
)
def test_bad_text_names_the_option_and_the_cause(text, cause):
    with pytest.raises(UsageError) as info:
        parse(text)
    message = str(info.value)
    assert message.startswith(f"invalid --push-layer-size {text!r}: ") and cause in message
    assert "\n" not in message


# Log-normal, uniform, fixed


def test_lognormal_median_and_p90_are_recovered_from_samples():
    dist = LogNormal(10 * MB, 200 * MB, max=100 << 30)
    sizes = draws(dist)
    assert abs(fraction_below(sizes, 10 * MB) - 0.5) < TOL
    assert abs(fraction_below(sizes, 200 * MB) - 0.9) < TOL
    # The sample quantiles themselves, in log size: a sample q-quantile's standard deviation is
    # sqrt(q(1-q)/n) / pdf(z_q) * sigma; four of them.
    for q, expected in ((0.5, 10 * MB), (0.9, 200 * MB)):
        z = NormalDist().inv_cdf(q)
        sd = math.sqrt(q * (1 - q) / N) / NormalDist().pdf(z) * dist.sigma
        assert abs(math.log(sizes[int(q * N)] / expected)) < 4 * sd, q
    assert (dist.quantile(0.5), dist.quantile(0.9)) == (10 * MB, 200 * MB)


def test_lognormal_is_clipped_at_its_cap():
    dist = parse("lognormal:median=1MB,p90=100MB,max=200MB")
    sizes = draws(dist)
    assert max(sizes) == 200 * MB and min(sizes) >= 0
    # P(X > 200 MB) for the uncapped log-normal: every such draw lands on the cap.
    above = 1 - NormalDist().cdf(math.log(200) / dist.sigma)
    assert abs(sizes.count(200 * MB) / N - above) < TOL
    assert dist.quantile(0.99) == dist.quantile(1.0) == 200 * MB and dist.quantile(0.0) == 0


def test_uniform_and_fixed():
    sizes = draws(parse("1KiB-4KiB"))
    assert sizes[0] >= 1024 and sizes[-1] <= 4096 and len(set(sizes)) > 2000
    assert abs(sum(sizes) / N - 2560) < 4 * 886 / math.sqrt(N)  # 886: the sd of U(1024, 4096)
    assert set(draws(parse("10MiB"), n=50)) == {10 << 20}
    assert parse("1KiB-4KiB").quantile(0.5) == 2560


@pytest.mark.parametrize("q", [-0.1, 1.5, float("nan")])
def test_quantile_refuses_q_outside_0_1(q):
    for dist in (Fixed(1), Uniform(1, 2), LogNormal(1, 2), PRESETS["ibm-fast18"], Empirical(sizes=(1, 2))):
        with pytest.raises(ValueError):
            dist.quantile(q)


# Presets against their papers


def test_ibm_fast18_preset_matches_its_published_percentiles():
    """Anwar et al., FAST '18: 65 % of layers under 1 MB, 80 % under 10 MB."""
    dist = PRESETS["ibm-fast18"]
    sizes = draws(dist)
    assert abs(fraction_below(sizes, 1 * MB) - 0.65) < TOL
    assert abs(fraction_below(sizes, 10 * MB) - 0.80) < TOL
    assert (dist.quantile(0.65), dist.quantile(0.80)) == (1 * MB, 10 * MB)
    assert sizes[0] >= 1000 and sizes[-1] <= 2 << 30
    assert dist.compression_ratio is None


def test_dockerhub_2019_preset_matches_its_published_percentiles():
    """Zhao et al., CLUSTER 2019: median compressed layer under 4 MB, 90 % under 63 MB, median
    compression ratio 2.6. The preset's median sits at the published bound, so half the draws fall
    under 4 MB within sampling error (not clearly more: the paper gives no lower figure)."""
    dist = PRESETS["dockerhub-2019"]
    sizes = draws(dist)
    assert fraction_below(sizes, 4 * MB) > 0.5 - TOL
    assert abs(fraction_below(sizes, 4 * MB) - 0.5) < TOL
    assert abs(fraction_below(sizes, 63 * MB) - 0.90) < TOL
    assert (dist.quantile(0.5), dist.quantile(0.9)) == (4 * MB, 63 * MB)
    assert sizes[-1] <= 2 << 30
    assert dist.compression_ratio == 2.6


def test_distributions_without_a_source_give_no_compression_ratio():
    for text in ("1MiB", "1MiB-2MiB", "lognormal:median=1MB,p90=2MB"):
        assert parse(text).compression_ratio is None


# Empirical files


def test_empirical_list_of_sizes(tmp_path):
    path = tmp_path / "sizes.txt"
    path.write_text("# layer sizes seen in our registry\n1KB\n1000\n\n1 KB  # units may follow a space\n2MiB\n")
    dist = parse(f"empirical:{path}")
    sizes = draws(dist)
    assert set(sizes) == {1000, 2 << 20}
    assert abs(sizes.count(1000) / N - 0.75) < TOL
    assert (dist.quantile(0.0), dist.quantile(0.74), dist.quantile(0.75), dist.quantile(1.0)) == (
        1000,
        1000,
        2 << 20,
        2 << 20,
    )
    assert str(dist) == f"empirical({path}: 4 sizes)"


def test_empirical_percentile_table(tmp_path):
    path = tmp_path / "cdf.txt"
    path.write_text("# PERCENT SIZE\n0 1KB\n65% 1MB\n\t80\t10 MB\n100 1GB\n")
    dist = parse(f"empirical:{path}")
    assert [dist.quantile(q) for q in (0, 0.65, 0.8, 1)] == [1000, MB, 10 * MB, 10**9]
    # Log-linear in size: halfway between two points is their geometric mean.
    assert dist.quantile(0.725) == round(math.sqrt(MB * 10 * MB))
    assert dist.quantile(0.325) == round(math.sqrt(1000 * MB))
    sizes = draws(dist)
    assert abs(fraction_below(sizes, MB) - 0.65) < TOL and abs(fraction_below(sizes, 10 * MB) - 0.80) < TOL
    assert sizes[0] >= 1000 and sizes[-1] <= 10**9


@pytest.mark.parametrize(
    "content, cause",
    [
        ("", "holds no sizes"),
        ("# nothing\n\n", "holds no sizes"),
        ("1MB\n50 2MB\n", "line 2: mixes sizes and PERCENT SIZE lines"),
        ("10 1KB\n100 1MB\n", "runs from 0 (the smallest size) to 100"),
        ("0 1KB\n90 1MB\n", "runs from 0 (the smallest size) to 100"),
        ("0 1KB\n50 1MB\n40 2MB\n100 3MB\n", "percent 40 does not follow 50"),
        ("0 1KB\n50 1MB\n50 2MB\n100 3MB\n", "percent 50 does not follow 50"),
        ("0 1KB\n50 1MB\n100 10KB\n", "size at 100% is below the size at 50%"),
        ("0 0\n100 1MB\n", "must be above 0"),
        ("0 1KB\n150 1MB\n", "line 2: percent 150 is outside 0-100"),
        ("0 1KB\nabc 1MB\n", "line 2: expected SIZE or PERCENT SIZE, got 'abc'"),
        ("0 1KB\n100 lots\n", "line 2: expected SIZE or PERCENT SIZE, got '100 lots'"),
    ],
)
def test_bad_empirical_files(tmp_path, content, cause):
    path = tmp_path / "sizes.txt"
    path.write_text(content)
    with pytest.raises(UsageError) as info:
        parse(f"empirical:{path}")
    assert str(info.value).startswith("invalid --push-layer-size 'empirical:") and cause in str(info.value)


def test_unreadable_empirical_files(tmp_path):
    with pytest.raises(UsageError, match="cannot read .*missing.txt: No such file"):
        parse(f"empirical:{tmp_path / 'missing.txt'}")
    with pytest.raises(UsageError, match="cannot read"):
        parse(f"empirical:{tmp_path}")  # a directory
    binary = tmp_path / "blob"
    binary.write_bytes(b"\xff\xfe\x00\x80")
    with pytest.raises(UsageError, match="is not a UTF-8 text file"):
        parse(f"empirical:{binary}")


def test_every_draw_is_a_whole_non_negative_size():
    rng = random.Random(3)
    for dist in [*PRESETS.values(), parse("0-10"), parse("lognormal:median=1,p90=2")]:
        for _ in range(2000):
            size = dist.sample(rng)
            assert isinstance(size, int) and size >= 0
