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
from typing import Any

import gevent
from gevent.event import Event
from locust import User, constant, task

from ..audit import AuditEntry, AuditLog
from ..auth import Authenticator, Credentials, TokenCache
from ..client import RegistryClient
from ..errors import RegloadError, TransportError
from ..http import TransportOptions
from ..pull import PullOptions, PullResult, pull
from ..push import PushOptions, PushResult, push
from ..reference import Reference, Registry
from ..sinks.base import Sink
from ..sinks.discard import DiscardSink
from ..sources.base import SourceImage
from ..sources.synthetic import synthetic_image_of
from ..transports import make_transport
from ..transports.gevent_runner import GeventRunner
from .observer import LocustObserver
from .options import LoadSettings, settings_from
from .pool import ImagePool, PoolImage

SHARED_TOKENS = TokenCache()  # --token-cache shared: one cache for the users of this process
POOL = ImagePool()
POOL_READY = Event()
POOL_WAIT_SECONDS = 300.0

_settings: dict[int, LoadSettings] = {}
_audit_logs: dict[str, AuditLog] = {}


def audit_log(path: str) -> AuditLog:
    """The process's audit log for ``path``, shared by its users (the file opens at the first line)."""
    if path not in _audit_logs:
        _audit_logs[path] = AuditLog(path)
    return _audit_logs[path]


def settings_for(environment: Any) -> LoadSettings:
    """Settings parsed once per environment (workers get the master's options at spawn)."""
    key = id(environment.parsed_options)
    if key not in _settings:
        _settings[key] = settings_from(environment.parsed_options)
    return _settings[key]


def clear_settings() -> None:
    _settings.clear()


def token_cache(mode: str) -> TokenCache:
    if mode == "shared":
        return SHARED_TOKENS
    return TokenCache(enabled=mode != "off")


def make_client(registry: Registry, settings: LoadSettings, observer: Any, cache: TokenCache) -> RegistryClient:
    options = TransportOptions(
        ca_cert=settings.ca_cert,
        insecure=settings.insecure,
        max_connections_per_host=max(settings.pull_jobs, settings.push_jobs) + 1,
    )
    credentials = Credentials(settings.username, settings.password) if settings.username else None
    transport = make_transport(options, http2=settings.http2)
    # --host is always a URL the user wrote: http:// there is plain HTTP asked for.
    auth = Authenticator(credentials, cache, plain_http=registry.scheme == "http")
    return RegistryClient(registry, transport, auth=auth, observer=observer, retry=settings.retry)


class RegistryUser(User):
    """Base class: one registry client per user, whole-image operations as stats rows."""

    abstract = True
    wait_time = constant(0)  # a load generator: no think time unless a scenario sets one
    settings: LoadSettings
    client: RegistryClient

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.settings = settings_for(environment)
        host = environment.host or self.host
        if not host:
            raise RegloadError("no registry: give --host http(s)://registry[:port][/prefix]")
        self.registry = Registry.from_url(host)
        self.rng = random.Random()
        self.observer = LocustObserver(environment.events)
        self.client = make_client(self.registry, self.settings, self.observer, token_cache(self.settings.token_cache))
        self.runner = GeventRunner()

    def reference(self, repository: str, reference: str) -> Reference:
        return Reference(self.registry, repository).with_reference(reference)

    def pull_image(
        self, repository: str, reference: str, *, head_first: bool | None = None, sink: Sink | None = None
    ) -> PullResult | None:
        """Pull a whole image, verifying every blob (or only counting with --no-verify).
        ``head_first`` overrides ``--pull-head-first`` for this pull. ``sink`` is where the
        image goes (a ``RootfsSink`` unpacks it as a node would); by default nothing is written."""
        s = self.settings
        head_first = s.head_first if head_first is None else head_first
        options = PullOptions(jobs=s.pull_jobs, verify=s.verify, head_first=head_first)
        started = time.perf_counter()
        try:
            ref = self.reference(repository, reference)
            result = pull(self.client, ref, sink or DiscardSink(), self.runner, options)
        except Exception as e:
            self.observer.operation("PULL", time.perf_counter() - started, 0, e)
            self._after_failure(e)
            return None
        self.observer.operation("PULL", time.perf_counter() - started, result.bytes, None)
        return result

    def push_image(self, image: SourceImage, repository: str, tag: str) -> PushResult | None:
        """Push a whole image: ping, token, HEAD and upload each blob, then the manifest."""
        s = self.settings
        options = PushOptions(
            upload_mode=s.upload_mode, chunk_size=s.chunk_size, jobs=s.push_jobs, check_existing=s.check_existing
        )
        started = time.perf_counter()
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
            audit_log(s.audit_file).record(entry)
        return result

    def _after_failure(self, error: Exception) -> None:
        if not isinstance(error, RegloadError):
            raise error  # a bug, not a registry fault: Locust lists it under Exceptions
        if isinstance(error, TransportError) and self.settings.connection_backoff > 0:
            # The registry cannot be reached: wait before the next attempt instead of counting
            # thousands of instant failures a second while it is down.
            gevent.sleep(self.settings.connection_backoff)

    def on_stop(self) -> None:
        self.client.transport.close()


class PullUser(RegistryUser):
    """Pulls whole images from the pool, one after another."""

    def on_start(self) -> None:
        from .hooks import ensure_pool  # the pool is seeded once per process, by the first PullUser

        ensure_pool(self.environment)

    @task
    def pull_from_pool(self) -> None:
        if not POOL_READY.wait(POOL_WAIT_SECONDS) or not POOL.images:
            # Seeding failed (logged once with its cause): nothing to pull. Count a failed pull
            # with the cause that stopped the seeding (the same words as its request's row), so
            # that the run cannot pass its checks with no request made, and do not spin.
            cause = POOL.error or RegloadError("nothing to pull: the pull pool is empty")
            self.observer.operation("PULL", 0.0, 0, cause)
            gevent.sleep(1.0)
            return
        image = POOL.pick(self.rng)
        if image is not None:
            self.pull_image(image.repository, image.reference)


class PushUser(RegistryUser):
    """Pushes unique synthetic images (the registry cannot deduplicate them) to random repos."""

    @task
    def push_unique(self) -> None:
        s = self.settings
        seed = self.rng.getrandbits(63)
        sizes = [s.push_layer_size.sample(self.rng) for _ in range(s.push_layers)]
        repository = s.repository(self.rng.randrange(s.repos))
        tag = f"push-{seed:016x}"
        if self.push_image(synthetic_image_of(sizes, seed), repository, tag) and s.pull_pushed:
            POOL.add(PoolImage(repository, tag))
