"""Replaying registry traces: the trace of this process, its warm-up, and its schedule.

Each process reads the trace files (``--trace``, at the same path on every worker), keeps the
records of its share (worker ``i`` of ``n`` replays records ``i``, ``i + n``, …), and schedules
each at its recorded time divided by ``--trace-speed``, through the open model's scheduler: a
record that finds no idle ``TraceUser`` is dropped and counted, never delayed.

Before the schedule starts, a warm-up outside the stats creates what the trace's GETs read (see
``regload.trace.plan``): every process warms up the whole trace, asking the registry first
(HEAD) so that what another process or an earlier run created is not pushed again; a blob read
in several repositories is uploaded once and mounted into the others.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import gevent

from .. import endpoints
from .. import mediatypes as mt
from ..client import NULL_OBSERVER, RegistryClient
from ..digest import Digest
from ..errors import AuthError, RegloadError
from ..pull import fetch_blob
from ..push import PushOptions, push_blob
from ..reference import Reference, Registry
from ..sources.base import BlobSource
from ..trace.plan import TraceBlob, TracePlan, base_blobs, manifest_for, repository_name, tag_name
from ..trace.records import Trace, TraceRecord, load_trace
from ..wiring.connect import make_client
from ..wiring.gevent_runner import GeventRunner
from .open_model import Arrivals, DropFn, Share
from .options import LoadSettings
from .rates import Segment

log = logging.getLogger("regload")
WARM_UP_JOBS = 16
WARM_UP_ATTEMPTS = 3  # set-up, not measurement: another process may push the same blob at once
_DONE = {"exists": "found", "mounted": "mounted", "uploaded": "uploaded"}  # push_blob's actions, as logged
CHECKED = PushOptions()  # HEAD first: what the registry holds already is not pushed again
WHOLE_UPLOAD = PushOptions(upload_mode="streamed", check_existing=False)  # a PUT record: POST, PATCH, PUT


@dataclass
class Replay:
    """A trace loaded for replay in this process, and what its warm-up learnt."""

    trace: Trace
    plan: TracePlan
    prefix: str
    blobs: dict[str, TraceBlob] = field(default_factory=dict)  # anonymised name → its blob
    schedule: TraceSchedule | None = None  # at the last --trace-speed asked for
    _repositories: dict[str, str] = field(default_factory=dict)

    def repository(self, anonymised: str) -> str:
        name = self._repositories.get(anonymised)
        if name is None:
            name = self._repositories[anonymised] = repository_name(self.prefix, anonymised)
        return name

    def blob(self, name: str, settings: LoadSettings) -> TraceBlob:
        """The blob an anonymised digest stands for, of its recorded size, else of a size drawn
        from ``--push-layer-size`` (the same for every PUT of that name in this process)."""
        blob = self.blobs.get(name)
        if blob is None:
            size = self.plan.blob_sizes.get(name)
            if size is None:
                size = settings.push_layer_size.sample(random.Random(name))
            blob = self.blobs[name] = TraceBlob(name, size)
        return blob


_replays: dict[tuple[Any, ...], Replay] = {}


def replay_for(settings: LoadSettings) -> Replay | None:
    """This process's replay of ``--trace`` (read once per files and window), or None."""
    if not settings.trace_files:
        return None
    key = (settings.trace_files, settings.trace_window, settings.repo_prefix)
    replay = _replays.get(key)
    if replay is None:
        _replays.clear()
        trace = load_trace(settings.trace_files, settings.trace_window)
        replay = _replays[key] = Replay(trace, TracePlan.of(trace), settings.repo_prefix)
    return replay


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


def trace_schedule(settings: LoadSettings) -> TraceSchedule | None:
    """The replay's schedule at ``--trace-speed`` (kept with the replay: a master's report asks
    for it at each poll)."""
    replay = replay_for(settings)
    if replay is None:
        return None
    speed = settings.trace_speed
    if replay.schedule is None or replay.schedule.speed != speed:
        offsets = tuple(r.offset / speed for r in replay.trace.records)
        replay.schedule = TraceSchedule(offsets, speed, len(settings.trace_files))
    return replay.schedule


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

    def times(self, share: float, index: int) -> Iterator[tuple[float, Any]]:
        count = max(1, round(1.0 / share))
        records = self.replay.trace.records
        for i in range(index, len(records), count):
            yield records[i].offset / self.speed, records[i]


def warm_up(replay: Replay, client: RegistryClient, settings: LoadSettings) -> Counter[str]:
    """Create what the trace's GETs read, and the blobs its manifest PUTs refer to; what was
    done, counted: ``blobs uploaded``, ``blobs found``, ``blobs mounted``, ``manifests pushed``…"""
    registry = client.registry
    done: Counter[str] = Counter()
    runner = GeventRunner()
    plan = replay.plan

    def ref(anonymised: str) -> Reference:
        return Reference(registry, replay.repository(anonymised), "latest")

    def attempt(action: Callable[[], str]) -> None:
        for n in range(1, WARM_UP_ATTEMPTS + 1):
            try:
                done[action()] += 1
                return
            except RegloadError as e:
                if n == WARM_UP_ATTEMPTS or (isinstance(e, AuthError) and e.refused):
                    raise  # refused credentials would be refused again
                gevent.sleep(0.5 * n)

    def blob_to(repository: str, blob: BlobSource, options: PushOptions = CHECKED) -> None:
        attempt(lambda: "blobs " + _DONE[push_blob(client, ref(repository), blob, options).action])

    def base(repository: str) -> None:
        for blob in base_blobs(repository):
            blob_to(repository, blob)

    def blob_everywhere(name: str, repositories: list[str]) -> None:
        """Uploaded to the first repository that reads it, mounted into the others."""
        blob = replay.blob(name, settings)
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


def warm_up_client(settings: LoadSettings, host: str, transport: Any = None) -> RegistryClient:
    return make_client(Registry.from_url(host), settings.client_settings(), observer=NULL_OBSERVER, transport=transport)


def replay_record(
    client: RegistryClient, registry: Registry, replay: Replay, record: TraceRecord, settings: LoadSettings
) -> int:
    """Send one record's request (a PUT of a blob, or the commit of an upload session as a registry
    logs it, is a whole upload: POST, PATCH, PUT); the bytes moved."""
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
    blob = replay.blob(record.name, settings)
    if record.method == "GET":
        return fetch_blob(client, ref, blob.descriptor(), None, settings.verify)
    return push_blob(client, ref, blob, WHOLE_UPLOAD).sent
