"""Locust users that pull and push whole images with regload's protocol core.

``RegistryUser`` is the base for scenarios of your own: it owns one registry client per user
(its own connections and, unless shared, its own tokens, like a docker client) and offers
``pull_image`` and ``push_image``, which report each registry request under its endpoint name
and the whole operation as ``PULL image`` / ``PUSH image``. A registry fault is counted as a
failure with its cause; it never stops the user.
"""

from __future__ import annotations

import random
import time
from dataclasses import replace
from typing import Any, ClassVar

import gevent
from locust import User, constant, task
from locust.exception import StopUser

from ..audit import AuditEntry
from ..client import RegistryClient
from ..errors import AuthError, RegloadError, TransportError
from ..flows.pull import PullOptions, PullResult, pull
from ..flows.push import PushResult, push
from ..reference import Reference, Registry
from ..sinks.base import Sink
from ..sinks.discard import DiscardSink
from ..sources.base import SourceImage
from ..sources.synthetic import synthetic_image_of
from ..wiring.connect import make_client
from ..wiring.gevent_runner import GeventRunner
from ..workload.nodes import Node
from ..workload.pool import PoolImage
from ..workload.rates import ArrivalShape
from . import plugin  # noqa: F401  (a locustfile imports the user classes: that installs the plugin)
from .observer import LocustObserver, failure_cause
from .options import LoadSettings
from .run import LoadRun, TransportFactory

POOL_WAIT_SECONDS = 300.0


class RegistryUser(User):
    """Base class: one registry client per user, whole-image operations as stats rows."""

    abstract = True
    wait_time = constant(0)  # a load generator: no think time unless a scenario sets one
    #: Makes each user's transport; None: the one the options select (``--registry-http2``).
    #: A scenario or a test gives its own, e.g. a function returning an in-memory transport.
    transport_factory: ClassVar[TransportFactory | None] = None
    #: The operation this class's arrivals are (``PULL``, ``PUSH``), and a rate of one's own for
    #: it: an object whose ``tick(elapsed)`` gives the total arrivals per second (``rates.ArrivalShape``).
    kind: ClassVar[str | None] = None
    arrival_shape: ClassVar[ArrivalShape | None] = None
    settings: LoadSettings
    client: RegistryClient

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.load_run = LoadRun.of(environment)
        self.settings = self.load_run.settings
        host = environment.host or self.host
        if not host:
            raise RegloadError("no registry: give --host http(s)://registry[:port][/prefix]")
        self.registry = Registry.from_url(host)
        self.rng = random.Random()
        self.observer = LocustObserver(environment.events, self.load_run.hints)
        factory = type(self).transport_factory  # looked up on the class: a plain function stays unbound
        self.client = make_client(
            self.registry,
            self.settings.client,
            observer=self.observer,
            tokens=self.load_run.token_cache(),
            transport=factory() if factory is not None else None,
        )
        self.runner = GeventRunner()
        s = self.settings
        self._platform_options = {p: replace(s.pull, platform=p) for p in s.platforms.platforms}
        self._node: Node | None = None
        self._on_node = False  # joined a node (--node-users) at its first pull
        self.last_failure: str | None = None  # the cause of the last failed pull

    def reference(self, repository: str, reference: str) -> Reference:
        return self.load_run.reference(self.registry, repository, reference)

    def arrival(self, kind: str) -> float:
        """When this user's next ``kind`` (``PULL``/``PUSH``) operation starts, as ``perf_counter``:
        with a rate set (the open model), the scheduled time of the next arrival, waited for idle;
        without, now (a closed loop). Time the operation from it (``started=``). When the test
        stops while the user waits, the user stops (``StopUser``): it has nothing left to do."""
        arrivals = self.load_run.open_model.arrivals(kind)
        if arrivals is None:
            return time.perf_counter()
        scheduled = arrivals.next()
        if scheduled is None:
            raise StopUser()
        return scheduled

    def pull_image(
        self,
        repository: str,
        reference: str,
        *,
        head_first: bool | None = None,
        sink: Sink | None = None,
        started: float | None = None,
        row: tuple[str, str] = ("PULL", "image"),
    ) -> PullResult | None:
        """Pull a whole image, verifying every blob (or only counting with --no-verify).
        ``head_first`` overrides ``--pull-head-first`` for this pull. ``sink`` is where the
        image goes (a ``RootfsSink`` unpacks it as a node would); by default nothing is written.
        ``started``: when the pull was due (``arrival``), the start of its ``PULL image`` time.
        ``row``: the stats row of the whole pull (a storm's is ``STORM pull``). A failed pull
        returns None, its cause in ``last_failure``."""
        options = self._platform_options[self.settings.platforms.pick(self.rng)]
        if head_first is not None and head_first != options.head_first:
            options = replace(options, head_first=head_first)
        started = time.perf_counter() if started is None else started
        if not self._on_node:
            self._node, self._on_node = self.load_run.node(), True
        if self._node is None:
            return self._pull(repository, reference, options, sink, started, row)
        with self._node.pulling():
            admitted = time.perf_counter()
            self.observer.operation("NODE", admitted - started, 0, None, name="pull queue")
            return self._pull(repository, reference, options, sink, admitted, row)

    def _pull(
        self,
        repository: str,
        reference: str,
        options: PullOptions,
        sink: Sink | None,
        started: float,
        row: tuple[str, str],
    ) -> PullResult | None:
        kind, name = row
        try:
            ref = self.reference(repository, reference)
            result = pull(self.client, ref, sink or DiscardSink(), self.runner, options)
        except Exception as e:
            self.observer.operation(kind, time.perf_counter() - started, 0, e, name=name)
            self.last_failure = failure_cause(e)
            self._after_failure(e)
            return None
        self.observer.operation(kind, time.perf_counter() - started, result.bytes, None, name=name)
        return result

    def push_image(
        self, image: SourceImage, repository: str, tag: str, *, started: float | None = None
    ) -> PushResult | None:
        """Push a whole image: ping, token, HEAD and upload each blob, then the manifest.
        ``started``: when the push was due (``arrival``), the start of its ``PUSH image`` time."""
        s = self.settings
        options = s.push
        started = time.perf_counter() if started is None else started
        try:
            ref = self.reference(repository, tag)
            result = push(self.client, ref, image, self.runner, options)
        except Exception as e:
            self.observer.operation("PUSH", time.perf_counter() - started, 0, e)
            self._after_failure(e)
            return None
        finally:
            image.close()
        self.observer.operation("PUSH", time.perf_counter() - started, result.bytes, None)
        if s.audit_file:
            # No greenlet switch since the manifest PUT: a line per push counted as a success.
            entry = AuditEntry.pushed(ref, result.manifest_digest, result.media_type, result.manifest_size)
            self.load_run.audit_log(s.audit_file).record(entry)
        return result

    def _after_failure(self, error: Exception) -> None:
        if not isinstance(error, RegloadError):
            raise error  # a bug, not a registry fault: Locust lists it under Exceptions
        if _waits_after(error) and self.settings.connection_backoff > 0:
            # The registry cannot be reached, or refused the credentials: wait before the next
            # attempt instead of counting thousands of instant failures a second while it is
            # down, or asking its token service for thousands of tokens a second it will refuse.
            gevent.sleep(self.settings.connection_backoff)

    def on_stop(self) -> None:
        self.client.close()


class PullUser(RegistryUser):
    """Pulls whole images from the pool: one after another, or at the arrivals of ``--pull-rate``."""

    kind = "PULL"

    def on_start(self) -> None:
        self.load_run.pool.ensure(type(self).transport_factory)  # once per run and test

    @task
    def pull_from_pool(self) -> None:
        pool = self.load_run.pool
        if not pool.ready.wait(POOL_WAIT_SECONDS):
            return  # still seeding (a large pool takes minutes): wait on, nothing to count yet
        images = pool.images
        # An empty pool is fine when pushed images are to be pulled (--pull-after-push).
        if images.error is not None or not (images or self.settings.pool.after_push is not None):
            # Seeding failed (logged once with its cause): nothing to pull. Count a failed pull
            # with the cause that stopped the seeding (the same words as its request's row), so
            # that the run cannot pass its checks with no request made, and do not spin.
            cause = images.error or RegloadError("nothing to pull: the pull pool is empty")
            self.observer.operation("PULL", 0.0, 0, cause)
            gevent.sleep(1.0)
            return
        started = self.arrival("PULL")
        # A freshly pushed image due for its pull (--pull-after-push) comes before the pool.
        image = self.load_run.fresh.take(time.perf_counter()) or images.pick(self.rng, self.settings.pool.popularity)
        if image is None:
            gevent.sleep(0.1)  # only pushed images to pull, and none due yet
            return
        self.pull_image(image.repository, image.reference, started=started)


class PushUser(RegistryUser):
    """Pushes unique synthetic images (the registry cannot deduplicate them) to random repos:
    one after another, or at the arrivals of ``--push-rate``."""

    kind = "PUSH"

    @task
    def push_unique(self) -> None:
        started = self.arrival("PUSH")
        s = self.settings
        seed = self.rng.getrandbits(63)
        pushed = s.images
        sizes = [pushed.layer_size.sample(self.rng) for _ in range(pushed.layers)]
        repository = s.repository(self.rng.randrange(pushed.repos))
        tag = f"push-{seed:016x}"
        if self.push_image(synthetic_image_of(sizes, seed, ratio=pushed.gzip_ratio), repository, tag, started=started):
            if s.pool.pushed_join:
                self.load_run.pool.images.add(PoolImage(repository, tag))
            after_push = s.pool.after_push
            if after_push is not None and after_push.chosen(self.rng):
                self.load_run.fresh.add(PoolImage(repository, tag), time.perf_counter() + after_push.delay)


def _waits_after(error: RegloadError) -> bool:
    """Whether a user waits ``--connection-backoff`` after this failure: the network failed, or
    the registry or its token server refused the credentials (the next try would be refused too)."""
    return isinstance(error, TransportError) or (isinstance(error, AuthError) and error.refused)
