"""Replaying a registry trace: its records as a schedule, its warm-up, and each record's request.

A process keeps the records of its share (worker ``i`` of ``n`` replays records ``i``, ``i + n``,
…) and schedules each at its recorded time divided by the replay's speed, through the open
model's scheduler: a record that finds no idle user is dropped and counted, never delayed.

Before the schedule starts, a warm-up outside the stats creates what the trace's GETs read (see
``plan``): every process warms up the whole trace, asking the registry first (HEAD) so that
what another process or an earlier run created is not pushed again; a blob read in several
repositories is uploaded once and mounted into the others.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import gevent

from ... import endpoints
from ... import mediatypes as mt
from ...client import RegistryClient
from ...digest import Digest
from ...errors import RegloadError
from ...flows.pull import fetch_blob
from ...flows.push import PushOptions, push_blob
from ...reference import Reference
from ...sources.base import BlobSource
from ...wiring.gevent_runner import GeventRunner
from ..open_model import Arrivals, DropFn, Share
from ..rates import Segment
from ..setup import with_retries
from ..sizes import SizeDistribution
from .plan import TraceBlob, TracePlan, base_blobs, manifest_for, repository_name, tag_name
from .records import Trace, TraceRecord, Window, load_trace

log = logging.getLogger("regload")
WARM_UP_JOBS = 16
_DONE = {"exists": "found", "mounted": "mounted", "uploaded": "uploaded"}  # push_blob's actions, as logged
CHECKED = PushOptions()  # HEAD first: what the registry holds already is not pushed again
WHOLE_UPLOAD = PushOptions(upload_mode="streamed", check_existing=False)  # a PUT record: POST, PATCH, PUT


@dataclass
class Replay:
    """A trace loaded for replay in this process, and what its warm-up learnt. ``layer_sizes``:
    the sizes of blobs the trace does not say the size of."""

    trace: Trace
    plan: TracePlan
    prefix: str
    layer_sizes: SizeDistribution
    blobs: dict[str, TraceBlob] = field(default_factory=dict)  # anonymised name → its blob
    _schedule: TraceSchedule | None = None  # at the last speed asked for
    _repositories: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, files: Sequence[str], window: Window, prefix: str, layer_sizes: SizeDistribution) -> Replay:
        trace = load_trace(files, window)
        return cls(trace, TracePlan.of(trace), prefix, layer_sizes)

    def repository(self, anonymised: str) -> str:
        name = self._repositories.get(anonymised)
        if name is None:
            name = self._repositories[anonymised] = repository_name(self.prefix, anonymised)
        return name

    def blob(self, name: str) -> TraceBlob:
        """The blob an anonymised digest stands for, of its recorded size, else of a size drawn
        from ``layer_sizes`` (the same for every PUT of that name in this process)."""
        blob = self.blobs.get(name)
        if blob is None:
            size = self.plan.blob_sizes.get(name)
            if size is None:
                size = self.layer_sizes.sample(random.Random(name))
            blob = self.blobs[name] = TraceBlob(name, size)
        return blob

    def schedule(self, speed: float) -> TraceSchedule:
        """The records as a schedule at ``speed``, kept (a master's report asks at each poll)."""
        if self._schedule is None or self._schedule.speed != speed:
            offsets = tuple(r.offset / speed for r in self.trace.records)
            self._schedule = TraceSchedule(offsets, speed, len(self.trace.files))
        return self._schedule


@dataclass(frozen=True)
class TraceSchedule:
    """A trace as a rate over time (for the arrivals report): its records per second."""

    offsets: tuple[float, ...]  # seconds from the origin, at the replay's speed
    speed: float
    files: int

    @cached_property
    def _per_second(self) -> list[tuple[int, int]]:
        # The report reads the schedule at each web UI poll: a trace's millions of offsets are
        # counted once.
        return sorted(Counter(int(offset) for offset in self.offsets).items())

    def segments(self) -> Iterator[Segment]:
        for second, count in self._per_second:
            yield Segment(float(second), second + 1.0, float(count), float(count))

    def __str__(self) -> str:
        return f"trace x{self.speed:g} ({len(self.offsets)} requests, {self.files} file(s))"


class TraceArrivals(Arrivals):
    """The open model's scheduler walking a trace's records instead of a rate."""

    def __init__(
        self,
        replay: Replay,
        schedule: TraceSchedule,
        share: Share,
        on_drop: DropFn,
        warm_up: Callable[[Replay], Counter[str]],
    ) -> None:
        super().__init__("TRACE", schedule, "uniform", share, on_drop)
        self.replay = replay
        self.speed = schedule.speed
        self.error: Exception | None = None  # why the warm-up failed
        self._warm_up = warm_up

    def wait_to_start(self) -> None:
        super().wait_to_start()
        started = time.perf_counter()
        try:
            done = self._warm_up(self.replay)
        except RegloadError as e:
            self.error = e
            log.error("regload: the trace's warm-up failed: %s", e)
            self.stopped = time.perf_counter()
            while self._channel.getters:  # the users waiting stop, and count the cause
                self._channel.put(None, block=False)
            raise gevent.GreenletExit from None
        counts = ", ".join(f"{n} {what}" for what, n in sorted(done.items())) or "nothing to create"
        log.info("regload: trace warm-up done in %.1f s: %s", time.perf_counter() - started, counts)

    def times(self, share: float, index: int, start: float = 0.0) -> Iterator[tuple[float, Any]]:
        count = max(1, round(1.0 / share))
        records = self.replay.trace.records
        for i in range(index, len(records), count):
            yield records[i].offset / self.speed, records[i]


def warm_up(replay: Replay, client: RegistryClient) -> Counter[str]:
    """Create what the trace's GETs read, and the blobs its manifest PUTs refer to; what was
    done, counted: ``blobs uploaded``, ``blobs found``, ``blobs mounted``, ``manifests pushed``…"""
    registry = client.registry
    done: Counter[str] = Counter()
    runner = GeventRunner()
    plan = replay.plan

    def ref(anonymised: str) -> Reference:
        return Reference(registry, replay.repository(anonymised), "latest")

    def attempt(action: Callable[[], str]) -> None:
        done[with_retries(action)] += 1

    def blob_to(repository: str, blob: BlobSource, options: PushOptions = CHECKED) -> None:
        attempt(lambda: "blobs " + _DONE[push_blob(client, ref(repository), blob, options).action])

    def base(repository: str) -> None:
        for blob in base_blobs(repository):
            blob_to(repository, blob)

    def blob_everywhere(name: str, repositories: list[str]) -> None:
        """Uploaded to the first repository that reads it, mounted into the others."""
        blob = replay.blob(name)
        blob_to(repositories[0], blob)
        mount = PushOptions(mount_from=replay.repository(repositories[0]))
        for other in repositories[1:]:
            blob_to(other, blob, mount)

    def manifest(key: tuple[str, str]) -> None:
        repository, name = key
        tag = tag_name(name)
        raw = manifest_for(repository, tag, plan.manifest_sizes.get(key))
        r = Reference(registry, replay.repository(repository), tag)
        attempt(lambda: "manifests " + _put_manifest_unless_there(client, r, tag, raw))

    where: dict[str, list[str]] = {}
    for repository, name in plan.warm_blobs:
        where.setdefault(name, []).append(repository)
    client.ping()
    runner.map(base, plan.manifest_repositories, WARM_UP_JOBS)
    runner.map(lambda item: blob_everywhere(*item), list(where.items()), WARM_UP_JOBS)
    runner.map(manifest, plan.warm_manifests, WARM_UP_JOBS)
    return done


def _put_manifest_unless_there(client: RegistryClient, ref: Reference, tag: str, raw: bytes) -> str:
    head = endpoints.head_manifest(client, ref, tag)
    if head is not None and head.digest == Digest.of(raw):
        return "found"
    endpoints.put_manifest(client, ref, tag, raw, mt.OCI_MANIFEST)
    return "pushed"


def replay_record(client: RegistryClient, replay: Replay, record: TraceRecord, verify: bool = True) -> int:
    """Send one record's request (a PUT of a blob, or the commit of an upload session as a registry
    logs it, is a whole upload: POST, PATCH, PUT); the bytes moved."""
    registry = client.registry
    repository = replay.repository(record.repository)
    if record.kind == "manifest":
        tag = tag_name(record.name)
        ref = Reference(registry, repository, tag)
        if record.method == "GET":
            return len(endpoints.get_manifest(client, ref).raw)
        raw = manifest_for(record.repository, tag, record.size)
        endpoints.put_manifest(client, ref, tag, raw, mt.OCI_MANIFEST)
        return len(raw)
    ref = Reference(registry, repository, "latest")
    blob = replay.blob(record.name)
    if record.method == "GET":
        return fetch_blob(client, ref, blob.descriptor(), None, verify)
    return push_blob(client, ref, blob, WHOLE_UPLOAD).sent
