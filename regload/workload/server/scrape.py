"""One scrape of a Prometheus endpoint, parsed with ``prometheus_client``'s parser into the
series regload reads: histograms (cumulative buckets, count, sum), summaries (published
quantiles, count, sum), counters and gauges, each keyed by its family and its labels."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs


@dataclass
class Histogram:
    buckets: list[tuple[float, float]] = field(default_factory=list)  # (upper bound, cumulative count)
    count: float = 0.0
    sum: float = 0.0


@dataclass
class Summary:
    quantiles: dict[float, float] = field(default_factory=dict)  # q (0-1) → seconds
    count: float = 0.0
    sum: float = 0.0


@dataclass
class Scrape:
    at: float  # seconds since the run's start
    histograms: dict[tuple[str, Labels], Histogram] = field(default_factory=dict)
    summaries: dict[tuple[str, Labels], Summary] = field(default_factory=dict)
    values: dict[tuple[str, Labels], float] = field(default_factory=dict)  # counters and gauges

    def value(self, name: str, **labels: str) -> float | None:
        return self.values.get((name, _labels(labels)))

    def families(self) -> set[str]:
        return {name for name, _ in (*self.histograms, *self.summaries, *self.values)}


def parse(text: str, at: float) -> Scrape:
    """A scrape from the exposition text (a malformed text raises ``ValueError``)."""
    scrape = Scrape(at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            if family.type == "histogram":
                le = labels.pop("le", None)
                histogram = scrape.histograms.setdefault((family.name, _labels(labels)), Histogram())
                if sample.name.endswith("_bucket") and le is not None:
                    histogram.buckets.append((float(le), sample.value))
                elif sample.name.endswith("_count"):
                    histogram.count = sample.value
                elif sample.name.endswith("_sum"):
                    histogram.sum = sample.value
            elif family.type == "summary":
                quantile = labels.pop("quantile", None)
                summary = scrape.summaries.setdefault((family.name, _labels(labels)), Summary())
                if quantile is not None:
                    summary.quantiles[float(quantile)] = sample.value
                elif sample.name.endswith("_count"):
                    summary.count = sample.value
                elif sample.name.endswith("_sum"):
                    summary.sum = sample.value
            elif family.type in ("counter", "gauge", "untyped"):
                # A counter's family drops "_total"; its sample keeps it: key by the sample's name.
                scrape.values[(sample.name, _labels(labels))] = sample.value
    return scrape


def _labels(labels: dict[str, str]) -> Labels:
    return tuple(sorted(labels.items()))
