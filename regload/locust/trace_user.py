"""``TraceUser``: replays registry traces (``--trace FILE``) open-model, each record at its time.

Each record is one request — a GET of a manifest or blob, a PUT of a manifest, or a PUT of a
blob as a whole upload (POST, PATCH, PUT) — reported under its endpoint's row and as
``TRACE GET blob`` (…) timed from when the record was due: a registry that falls behind shows
in the latency, not in a slower replay. Users are the replay's concurrency: give enough
(``-u``) for the trace's busiest moment; a record that finds none idle is counted as dropped.
"""

from __future__ import annotations

import time
from collections import Counter

from locust import task
from locust.exception import StopUser

from ..client import NULL_OBSERVER
from ..errors import RegloadError
from ..reference import Registry
from ..wiring.connect import make_client
from ..workload.trace.replay import Replay, TraceArrivals, replay_record, warm_up
from .observer import drop_counter
from .users import RegistryUser

KIND = "TRACE"


class TraceUser(RegistryUser):
    """Replays the records of ``--trace`` handed to it by the trace's scheduler."""

    kind = KIND

    @task
    def replay(self) -> None:
        arrivals = _trace_arrivals(self)
        if arrivals is None:
            self.observer.operation(KIND, 0.0, 0, RegloadError("no trace: give --trace FILE"), name="replay")
            raise StopUser()
        item = arrivals.next_item()
        if item is None:  # the run stops, or the warm-up failed: counted once per user, with its cause
            if arrivals.error is not None:
                self.observer.operation(KIND, 0.0, 0, arrivals.error, name="warm-up")
            raise StopUser()
        scheduled, record = item
        name = f"{record.method} {record.kind}"
        try:
            moved = replay_record(self.client, arrivals.replay, record, self.settings.pull.verify)
        except Exception as e:
            self.observer.operation(KIND, time.perf_counter() - scheduled, 0, e, name=name)
            self._after_failure(e)
            return
        self.observer.operation(KIND, time.perf_counter() - scheduled, moved, None, name=name)


def _trace_arrivals(user: TraceUser) -> TraceArrivals | None:
    """The run's trace schedule, started by the first TraceUser to ask."""
    open_model = user.load_run.open_model
    arrivals = open_model.schedules.get(KIND)
    if arrivals is None:
        replay, schedule = user.load_run.replay(), user.load_run.trace_schedule()
        if replay is None or schedule is None:
            return None
        settings, environment = user.settings, user.environment
        factory = type(user).transport_factory

        def warm(replay: Replay) -> Counter[str]:
            registry = Registry.from_url(environment.host)
            transport = factory() if factory is not None else None
            client = make_client(registry, settings.client, observer=NULL_OBSERVER, transport=transport)
            try:
                return warm_up(replay, client)
            finally:
                client.close()

        dropped = drop_counter(environment.events, "no idle user at the record's time")
        arrivals = open_model.add(TraceArrivals(replay, schedule, open_model.share, dropped, warm))
    assert isinstance(arrivals, TraceArrivals)
    return arrivals
