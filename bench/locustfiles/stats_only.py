"""A floor for bench/per_request.py: a Locust user that sends nothing and only reports four
requests per task (the names and sizes of one pull's GETs, 1 ms each) the way every Locust user
reports one (``events.request``). Its CPU per request is what Locust's own stats cost, below any
client that runs inside Locust."""

from _cpu import _on_start, _on_stop  # noqa: F401  (listeners)
from locust import User, constant, task

NAMES = ("/v2/", "/v2/<name>/manifests/<reference>", "/v2/<name>/blobs/<digest>", "/v2/<name>/blobs/<digest>")


class StatsOnly(User):
    wait_time = constant(0)

    @task
    def pull(self) -> None:
        fire = self.environment.events.request.fire
        for name in NAMES:
            fire(request_type="GET", name=name, response_time=1.0, response_length=1024, exception=None, context={})
