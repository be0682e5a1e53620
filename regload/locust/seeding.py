"""The pull pool of a test: seeded once per run, reused across runs. Seeding is set-up, not
measurement: its requests are not in the stats.

Which process seeds: a single process (the first of its PullUsers to start); in a distributed
run the master, at test start (``pool_sync``), while the workers wait and then build the same
list without pushing. The images and tags are deterministic (``pool_layout``): before pushing
image ``i`` the seeder HEADs its tag and reuses what an earlier run pushed.
How the images are pushed: ``regload.workload.pool_seed``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import gevent

from ..client import NULL_OBSERVER
from ..errors import RegloadError
from ..http import Transport
from ..reference import Registry, parse_reference
from ..wiring.connect import make_client
from ..workload.pool import PoolImage
from ..workload.pool_layout import PoolSpec
from ..workload.pool_seed import seed_images
from .observer import log_hint
from .options import LoadSettings
from .state import POOL, POOL_READY, settings_for

log = logging.getLogger("regload")

TransportFactory = Callable[[], Transport]
_seeding: gevent.Greenlet | None = None


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
