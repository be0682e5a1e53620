"""The registry's own side of a run, from its Prometheus metrics: one scrape parsed (``scrape``,
with ``prometheus_client``'s parser), what each registry calls its requests (``dialects``:
CNCF distribution, Harbor's core, zot), quantiles from histogram buckets as PromQL's
``histogram_quantile`` computes them (``quantile``), and the server's rows set beside the
client's (``compare``). Nothing here knows Locust."""
