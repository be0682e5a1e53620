"""The pull pool of a Locust process: seeded once per test, in the background, by the first
PullUser to start; PullUsers wait for it. Seeding is set-up, not measurement: its requests are
not in the stats."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent

from ..client import NULL_OBSERVER
from ..errors import RegloadError
from ..http import Transport
from ..push import PushOptions, push
from ..reference import Reference, Registry, parse_reference
from ..sources.synthetic import synthetic_image
from ..wiring.connect import make_client
from ..wiring.gevent_runner import GeventRunner
from .observer import tls_hint
from .pool import PoolImage
from .state import POOL, POOL_READY, settings_for

log = logging.getLogger("regload")
SEED_CONCURRENCY = 4
SEED_ATTEMPTS = 3  # pushes of one pool image before seeding gives up

TransportFactory = Callable[[], Transport]
_seeding: gevent.Greenlet | None = None


def ensure_pool(environment: Any, transport_factory: TransportFactory | None = None) -> None:
    """Start seeding this process's pull pool unless it is under way or done for this test.
    ``transport_factory``: the transport of the user class that asked (None: the default one)."""
    global _seeding
    if _seeding is None:
        _seeding = gevent.spawn(seed_pool, environment, transport_factory)


def stop_seeding() -> None:
    """A new test starts: the seeding of the last one (if still running) is abandoned."""
    global _seeding
    if _seeding is not None:
        _seeding.kill(block=False)
        _seeding = None


def seed_pool(environment: Any, transport_factory: TransportFactory | None = None) -> None:
    """Push the pool's synthetic images (deterministic: every process pushes the same ones, so
    all but the first find them present) and add the ``--pull-image`` ones. Not in the stats."""
    settings = settings_for(environment)
    registry = Registry.from_url(environment.host)
    transport = transport_factory() if transport_factory is not None else None
    client = make_client(registry, settings.client_settings(), observer=NULL_OBSERVER, transport=transport)
    try:
        for text in settings.pull_images:
            ref = parse_reference(text, registry=registry)
            POOL.add(PoolImage(ref.repository, ref.reference))
        options = PushOptions(jobs=settings.push_jobs)

        def seed(i: int) -> PoolImage:
            ref = Reference(registry, settings.repository(i), f"pool-{i}")
            for attempt in range(1, SEED_ATTEMPTS + 1):
                image = synthetic_image(settings.pool_layers, settings.pool_layer_size, seed=i)
                try:
                    push(client, ref, image, GeventRunner(), options)
                    break
                except RegloadError:
                    # Set-up, not measurement, so it may try again: other processes push the
                    # same blobs at this moment, and distribution's filesystem storage may then
                    # answer DIGEST_INVALID while another upload of the blob is being linked.
                    if attempt == SEED_ATTEMPTS:
                        raise
                    gevent.sleep(0.5 * attempt)
                finally:
                    image.close()
            return PoolImage(ref.repository, ref.reference)

        for image in GeventRunner().map(seed, range(settings.pool_size), SEED_CONCURRENCY):
            POOL.add(image)
        log.info("regload: pull pool ready: %d images", len(POOL.images))
    except RegloadError as e:
        POOL.error = e
        log.error("regload: could not seed the pull pool: %s", e)
        tls_hint(e)
    finally:
        client.close()
        POOL_READY.set()
