"""The pull pool of a test: seeded once per run, reused across runs. Seeding is set-up, not
measurement: its requests are not in the stats.

Which process seeds: a single process (the first of its PullUsers to start); in a distributed
run the master, at test start (``pool_sync``), while the workers wait and then build the same
list without pushing. The images and tags are deterministic (``pool_layout``): before pushing
image ``i`` the seeder HEADs its tag and reuses what an earlier run pushed.

Order, so that pushes meet existing blobs instead of uploading one blob many times at once
(distribution's filesystem storage may answer 500 or ``DIGEST_INVALID`` to concurrent uploads of
one blob): image 0 first (the OS layer), then the first image of every other family, then the
rest, ``--pool-seed-jobs`` at a time; an image in another repository than its family's first
mounts the base blobs from there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import gevent

from ..client import NULL_OBSERVER, RegistryClient
from ..endpoints import head_manifest, push_scope, put_manifest
from ..errors import AuthError, RegloadError
from ..http import Transport
from ..manifest import Descriptor
from ..push import PushOptions, manifest_bytes, push_blob
from ..reference import Reference, Registry, parse_reference
from ..sources.base import BlobSource
from ..wiring.connect import make_client
from ..wiring.gevent_runner import GeventRunner
from .observer import log_hint
from .options import LoadSettings
from .pool import PoolImage
from .pool_layout import PoolSpec
from .state import POOL, POOL_READY, settings_for

log = logging.getLogger("regload")
SEED_ATTEMPTS = 3  # pushes of one pool image before seeding gives up
PROGRESS_EVERY = 10.0  # seconds between two progress lines of a long seeding

TransportFactory = Callable[[], Transport]
_seeding: gevent.Greenlet | None = None


@dataclass
class SeedCounts:
    pushed: int = 0
    reused: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return f"{self.pushed} pushed, {self.reused} reused, in {self.seconds:.1f} s"


def pool_spec(settings: LoadSettings) -> PoolSpec:
    return PoolSpec(
        layers=settings.pool_layers,
        layer_size=settings.pool_layer_size,
        families=settings.pool_families,
        base_layers=settings.pool_base_layers,
        gzip_ratio=settings.gzip_ratio,
    )


def pool_images(settings: LoadSettings, registry: Registry) -> tuple[list[PoolImage], list[PoolImage]]:
    """The seeded images (index order: the popularity rank) and the ``--pull-image`` ones, as
    every process computes them."""
    spec = pool_spec(settings)
    seeded = [PoolImage(settings.repository(i), spec.tag(i)) for i in range(settings.pool_size)]
    named = []
    for text in settings.pull_images:
        ref = parse_reference(text, registry=registry)
        named.append(PoolImage(ref.repository, ref.reference))
    return seeded, named


def fill_pool(settings: LoadSettings, registry: Registry) -> None:
    seeded, named = pool_images(settings, registry)
    POOL.set_seeded(seeded)
    for image in named:
        POOL.add(image)


def ensure_pool(environment: Any, transport_factory: TransportFactory | None = None) -> None:
    """Start seeding this process's pull pool unless it is under way or done for this test, or
    unless this is a worker (its master seeds). ``transport_factory``: the transport of the user
    class that asked (None: the default one)."""
    global _seeding
    from locust.runners import WorkerRunner

    if isinstance(environment.runner, WorkerRunner):
        return
    if _seeding is None:
        _seeding = gevent.spawn(seed_pool, environment, transport_factory)


def stop_seeding() -> None:
    """A new test starts: the seeding of the last one (if still running) is abandoned."""
    global _seeding
    if _seeding is not None:
        _seeding.kill(block=False)
        _seeding = None


def seed_pool(environment: Any, transport_factory: TransportFactory | None = None) -> None:
    """Seed the pool on the registry, fill this process's list, set ``POOL_READY``."""
    settings = settings_for(environment)
    registry = Registry.from_url(environment.host)
    jobs = settings.pool_seed_jobs
    client_settings = settings.client_settings()
    # One client for all seeding greenlets: enough connections for each to push an image.
    client_settings = replace(client_settings, connections_per_host=jobs * settings.push_jobs + 1)
    transport = transport_factory() if transport_factory is not None else None
    client = make_client(registry, client_settings, observer=NULL_OBSERVER, transport=transport)
    try:
        spec = pool_spec(settings)
        counts = seed_images(client, registry, spec, settings.pool_size, settings.repository, jobs, settings.push_jobs)
        fill_pool(settings, registry)
        log.info("regload: pull pool ready: %d images (%s; tags pool-%s-N)", len(POOL), counts, spec.fingerprint)
    except RegloadError as e:
        POOL.error = e
        log.error("regload: could not seed the pull pool: %s", e)
        log_hint(e)
    finally:
        client.close()
        POOL_READY.set()


def seed_order(spec: PoolSpec, count: int) -> list[Sequence[int]]:
    """Phases of image indices, each pushed after the one before ended."""
    if spec.family(0) is None or count <= 1:
        return [range(count)]
    families = min(spec.families, count)
    return [range(1), range(1, families), range(families, count)]


def seed_images(
    client: RegistryClient,
    registry: Registry,
    spec: PoolSpec,
    count: int,
    repository: Callable[[int], str],
    jobs: int = 16,
    push_jobs: int = 5,
    upload_mode: str | None = None,
) -> SeedCounts:
    """Make pool images ``0 … count-1`` present on the registry: each is HEADed by tag and
    pushed only when missing. Raises the first image's error that persisted ``SEED_ATTEMPTS`` times."""
    counts = SeedCounts()
    started = time.perf_counter()
    # Monolithic uploads (POST, PUT with the body) take one request less per blob than streamed
    # ones (synthetic and gzip layers know their digest before they are sent).
    mode = upload_mode or "monolithic"
    client.ping()  # once: how the registry wants authentication
    pusher = PoolPusher(client, spec, repository, mode, push_jobs)
    last_log = [started]

    def progress() -> None:
        now = time.perf_counter()
        if now - last_log[0] >= PROGRESS_EVERY:
            last_log[0] = now
            log.info(
                "regload: seeding the pull pool: %d of %d images (%s)",
                counts.pushed + counts.reused,
                count,
                spec.fingerprint,
            )

    def seed(index: int) -> None:
        ref = Reference(registry, repository(index), spec.tag(index))
        for attempt in range(1, SEED_ATTEMPTS + 1):
            try:
                if head_manifest(client, ref) is not None:
                    counts.reused += 1
                    pusher.found(index)
                    progress()
                    return
                pusher.push(ref, index)
                counts.pushed += 1
                progress()
                return
            except RegloadError as e:
                # Set-up, not measurement, so it may try again (a registry under load from an
                # earlier run, or blobs of another process's pushes being linked); refused
                # credentials would be refused again.
                if attempt == SEED_ATTEMPTS or (isinstance(e, AuthError) and e.refused):
                    raise
                gevent.sleep(0.5 * attempt)

    for phase in seed_order(spec, count):
        # After the phase that pushed the blobs the next one shares, not beside it.
        GeventRunner().map(seed, phase, jobs)
    counts.seconds = time.perf_counter() - started
    return counts


class PoolPusher:
    """Pushes pool images, asking the registry only what it may not hold yet: a base blob is
    HEADed in the repository where it was first pushed, or mounted from there into another one,
    and not asked about at all in a repository where an image holding it was pushed or found
    already; an image's own blobs (unique to it) are uploaded without a HEAD first."""

    def __init__(
        self, client: RegistryClient, spec: PoolSpec, repository: Callable[[int], str], upload_mode: str, jobs: int
    ) -> None:
        self.client = client
        self.spec = spec
        self.repository = repository
        self.upload_mode = upload_mode
        self.jobs = max(1, jobs)
        self.shared: dict[str, Any] = {}  # base layers by role: their digests computed once
        self.present: set[tuple[str, str]] = set()  # (repository, base layer role) known to hold it

    def found(self, index: int) -> None:
        """Image ``index`` is on the registry: so are its base blobs, in its repository."""
        repository = self.repository(index)
        for plan in self.spec.plan(index):
            if self.spec.first_holder(index, plan.role) is not None:
                self.present.add((repository, plan.role))

    def push(self, ref: Reference, index: int) -> None:
        spec, client = self.spec, self.client
        image = spec.image(index, self.shared)
        try:
            own = PushOptions(upload_mode=self.upload_mode, check_existing=False)
            work: list[tuple[BlobSource, PushOptions | None]] = []
            homes: set[str] = set()
            for plan, layer in zip(spec.plan(index), image.layers, strict=True):
                first = spec.first_holder(index, plan.role)
                home = self.repository(first) if first is not None else None
                if home is None:  # the image's own
                    work.append((layer, own))
                elif (ref.repository, plan.role) in self.present:
                    work.append((layer, None))  # there already: nothing to ask
                elif home == ref.repository:
                    work.append((layer, PushOptions(upload_mode=self.upload_mode)))
                else:
                    homes.add(home)
                    work.append((layer, replace(own, mount_from=home)))
            client.prepare(push_scope(ref, *sorted(homes)))

            def one(item: tuple[BlobSource, PushOptions | None]) -> Descriptor:
                blob, options = item
                if options is None:
                    return blob.descriptor()
                return push_blob(client, ref, blob, options).descriptor

            layers = GeventRunner().map(one, work, self.jobs)
            config = push_blob(client, ref, image.config, own)
            raw = manifest_bytes(image, config.descriptor, layers)
            put_manifest(client, ref, ref.reference, raw, image.manifest_media_type)
        finally:
            image.close()
        self.found(index)
