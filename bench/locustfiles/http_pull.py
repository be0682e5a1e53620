"""Baseline for bench/per_request.py: a plain Locust HttpUser (requests) issuing the GET sequence of
one docker pull (ping, manifest with the Accept header, config, layer), stats names templated.

Paths come from the environment: BENCH_PATHS (four paths, space separated), BENCH_ACCEPT.
"""

import os

from _cpu import _on_start, _on_stop  # noqa: F401  (listeners)
from locust import HttpUser, constant, task

PING, MANIFEST, CONFIG, LAYER = os.environ["BENCH_PATHS"].split()
HEADERS = {"Accept": os.environ["BENCH_ACCEPT"]}


class HttpPull(HttpUser):
    wait_time = constant(0)

    @task
    def pull(self) -> None:
        self.client.get(PING, name="/v2/")
        self.client.get(MANIFEST, headers=HEADERS, name="/v2/<name>/manifests/<reference>")
        self.client.get(CONFIG, name="/v2/<name>/blobs/<digest>")
        self.client.get(LAYER, name="/v2/<name>/blobs/<digest>")
