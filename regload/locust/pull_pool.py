"""The pull pool of a run: the images its PullUsers pull, when they are ready, and who seeds them.

Seeding is set-up, not measurement: its requests are not in the stats. A single process seeds
when its first PullUser starts; in a distributed run the master seeds at test start and tells
its workers when the pool is ready (``Broadcast``), and a worker never pushes pool images: on
the message it builds the same list (the images and tags are deterministic: ``pool_layout``)
and its PullUsers start pulling. Before pushing image ``i`` the seeder HEADs its tag and reuses
what an earlier run pushed (``regload.workload.pool_seed``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event
from locust.runners import MasterRunner, WorkerRunner

from ..client import NULL_OBSERVER
from ..errors import RegloadError
from ..reference import Registry
from ..wiring.connect import make_client
from ..workload.pool import ImagePool
from ..workload.pool_seed import seed_images
from .broadcast import Broadcast
from .options import LoadSettings

if TYPE_CHECKING:
    from .run import LoadRun, TransportFactory

log = logging.getLogger("regload")
READY_MESSAGE = "regload_pool_ready"


class PullPool:
    """The images of one run's PullUsers (``images``) and their readiness (``ready``, set once
    seeding ended, whether it succeeded: ``images.error`` says)."""

    def __init__(self, run: LoadRun) -> None:
        self.run = run
        self.images = ImagePool()
        self.ready = Event()
        self._seeding: gevent.Greenlet | None = None
        self._telling: Broadcast | None = None

    def start_test(self) -> None:
        """A new test: an empty pool, not ready; a master whose users pull seeds it and tells."""
        self.stop_test()
        if self._seeding is not None:
            self._seeding.kill(block=False)  # the last test's, if still under way
            self._seeding = None
        self.images.reset()
        self.ready.clear()
        runner = self.run.environment.runner
        if not isinstance(runner, MasterRunner):
            return
        pulling = [c for c in self.run.environment.user_classes or () if getattr(c, "kind", None) == "PULL"]
        if pulling:
            self.ensure(getattr(pulling[0], "transport_factory", None))
            self._telling = Broadcast(runner, READY_MESSAGE, lambda _: self._ready_message(), self.ready.wait)

    def stop_test(self) -> None:
        if self._telling is not None:
            self._telling.stop()
            self._telling = None

    def ensure(self, transport_factory: TransportFactory | None = None) -> None:
        """Start seeding unless it is under way or done for this test, or unless this is a worker
        (its master seeds). ``transport_factory``: the transport of the user class that asked."""
        if isinstance(self.run.environment.runner, WorkerRunner) or self._seeding is not None:
            return
        self._seeding = gevent.spawn(self._seed, transport_factory)

    def _seed(self, transport_factory: TransportFactory | None) -> None:
        settings = self.run.settings
        registry = Registry.from_url(self.run.environment.host)
        jobs = settings.pool.seed_jobs
        # One client for all seeding greenlets: enough connections for each to push an image.
        client_settings = replace(settings.client, connections_per_host=jobs * settings.push.jobs + 1)
        transport = transport_factory() if transport_factory is not None else None
        client = make_client(registry, client_settings, observer=NULL_OBSERVER, transport=transport)
        try:
            spec = settings.pool_spec()
            counts = seed_images(
                client, registry, spec, settings.pool.size, settings.repository, jobs, settings.push.jobs
            )
            self._fill(settings, registry)
            log.info(
                "regload: pull pool ready: %d images (%s; tags pool-%s-N)", len(self.images), counts, spec.fingerprint
            )
        except RegloadError as e:
            self.images.error = e
            log.error("regload: could not seed the pull pool: %s", e)
            self.run.hints.log(e)
        finally:
            client.close()
            self.ready.set()

    def _fill(self, settings: LoadSettings, registry: Registry) -> None:
        seeded, named = settings.pool_images(registry)
        self.images.set_seeded(seeded)
        for image in named:
            self.images.add(image)

    def _ready_message(self) -> dict[str, Any]:
        error = self.images.error
        return {"fingerprint": self.run.settings.pool_spec().fingerprint, "error": str(error) if error else None}

    def on_ready(self, environment: Any, msg: Any, **_: Any) -> None:
        """A worker hears that its master's pool is ready."""
        if self.ready.is_set():
            return  # told again: nothing new
        settings = self.run.settings
        error, fingerprint = msg.data.get("error"), msg.data.get("fingerprint")
        try:
            if error:
                raise RegloadError(f"the master could not seed the pull pool: {error}")
            if fingerprint != settings.pool_spec().fingerprint:
                raise RegloadError("the master's pull pool has another spec than this worker's options")
            self._fill(settings, Registry.from_url(environment.host))
            log.info("regload: pull pool ready: %d images (seeded by the master)", len(self.images))
        except RegloadError as e:
            self.images.error = e
            log.error("regload: %s", e)
        finally:
            self.ready.set()
