"""``StormUser``: a client of a pull storm. It waits for the next storm (``storm_conductor``
publishes the image and picks the release time), is released with every other StormUser at that
time (within ``--storm-jitter``), pulls the image from ``--host`` once — its ``STORM pull`` row,
timed from its release — and waits for the next storm. Their count is the storm's size; client
profiles, ``--node-users`` and ``--node-parallel-pulls`` apply as to any pull."""

from __future__ import annotations

import time
from typing import Any

import gevent
from locust import task
from locust.exception import StopUser

from .users import RegistryUser


class StormUser(RegistryUser):
    """Pulls each storm's image once, released with the others at the storm's release time."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        # Joined when made, before Locust says every user is spawned (the first storm follows).
        crowd = self.load_run.crowd
        crowd.join(self)
        self.last_storm = crowd.current.number if crowd.current is not None else 0  # a late one waits

    def on_stop(self) -> None:
        self.load_run.crowd.leave(self)
        super().on_stop()

    @task
    def ride_the_storm(self) -> None:
        crowd = self.load_run.crowd
        storm = crowd.next_storm(self.last_storm)
        if storm is None:
            raise StopUser()  # the test stops
        self.last_storm = storm.number
        own_release = storm.release_at + (self.rng.uniform(0, storm.jitter) if storm.jitter else 0.0)
        gevent.sleep(max(0.0, own_release - time.time()))
        started = time.perf_counter() - max(0.0, time.time() - own_release)  # the release, on this clock
        result = self.pull_image(storm.repository, storm.reference, started=started, row=("STORM", "pull"))
        done = time.time()
        cause = None if result is not None else (self.last_failure or "failed")
        blobs = None if result is None else len(result.layers) + (1 if result.config_desc is not None else 0)
        pull = [(done - storm.release_at) * 1000, (done - own_release) * 1000, cause]
        crowd.done(self, storm, pull, blobs)
