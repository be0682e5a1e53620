"""Seeding the pull pool: the images of a ``PoolSpec`` made present on a registry, each HEADed
by tag first and pushed only when missing (an earlier run's are reused).

Order, so that pushes meet existing blobs instead of uploading one blob many times at once
(distribution's filesystem storage may answer 500 or ``DIGEST_INVALID`` to concurrent uploads of
one blob): image 0 first (the OS layer), then the first image of every other family, then the
rest, ``jobs`` at a time; an image in another repository than its family's first mounts the base
blobs from there. Seeding is set-up, not measurement: its requests are not in the stats, and a
failed image is tried again (``setup.with_retries``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gevent.lock import Semaphore

from ..client import RegistryClient
from ..endpoints import head_manifest, push_scope, put_manifest
from ..flows.push import PushOptions, manifest_bytes, push_blob
from ..manifest import Descriptor
from ..reference import Reference, Registry
from ..sources.base import BlobSource
from ..wiring.gevent_runner import GeventRunner
from .pool_layout import PoolSpec
from .setup import with_retries

log = logging.getLogger("regload")
PROGRESS_EVERY = 10.0  # seconds between two progress lines of a long seeding


@dataclass
class SeedCounts:
    pushed: int = 0
    reused: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return f"{self.pushed} pushed, {self.reused} reused, in {self.seconds:.1f} s"


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
    pushed only when missing. Raises the first image's error that persisted through its retries."""
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

    def seed_one(index: int) -> None:
        ref = Reference(registry, repository(index), spec.tag(index))
        if head_manifest(client, ref) is not None:
            counts.reused += 1
            pusher.found(index)
        else:
            pusher.push(ref, index)
            counts.pushed += 1
        progress()

    def seed(index: int) -> None:
        with_retries(lambda: seed_one(index))

    for phase in seed_order(spec, count):
        # After the phase that pushed the blobs the next one shares, not beside it.
        GeventRunner().map(seed, phase, jobs)
    counts.seconds = time.perf_counter() - started
    return counts


class PoolPusher:
    """Pushes pool images, asking the registry only what it may not hold yet: a base blob is
    HEADed in the repository where it was first pushed, or mounted from there into another one,
    and not asked about at all in a repository where an image holding it was pushed or found
    already; an image's own blobs (unique to it) are uploaded without a HEAD first.

    A base blob is placed in a repository by one image at a time; the others wait for it. Two
    mounts of one blob into one repository rewrite its link file, and distribution's filesystem
    driver truncates before it writes: a manifest PUT that reads the link meanwhile is refused
    with ``DIGEST_INVALID`` (the empty link fails to parse as a digest)."""

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
        self.placing: dict[tuple[str, str], Semaphore] = {}  # one image places a base blob at a time

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
            work: list[tuple[BlobSource, PushOptions, str | None]] = []  # blob, how, base layer role
            homes: set[str] = set()
            for plan, layer in zip(spec.plan(index), image.layers, strict=True):
                first = spec.first_holder(index, plan.role)
                home = self.repository(first) if first is not None else None
                if home is None:  # the image's own
                    work.append((layer, own, None))
                    continue
                if home == ref.repository:
                    how = PushOptions(upload_mode=self.upload_mode)  # HEAD first
                else:
                    how = replace(own, mount_from=home)
                    if (ref.repository, plan.role) not in self.present:
                        homes.add(home)
                work.append((layer, how, plan.role))
            client.prepare(push_scope(ref, *sorted(homes)))

            def one(item: tuple[BlobSource, PushOptions, str | None]) -> Descriptor:
                blob, how, role = item
                if role is None:
                    return push_blob(client, ref, blob, how).descriptor
                key = (ref.repository, role)
                with self.placing.setdefault(key, Semaphore()):
                    if key not in self.present:  # else there already: nothing to ask
                        push_blob(client, ref, blob, how)
                        self.present.add(key)
                return blob.descriptor()

            layers = GeventRunner().map(one, work, self.jobs)
            config = push_blob(client, ref, image.config, own)
            raw = manifest_bytes(image, config.descriptor, layers)
            put_manifest(client, ref, ref.reference, raw, image.manifest_media_type)
        finally:
            image.close()
        self.found(index)
