"""The storms' conductor, on the master or the single process: every ``--storm-every`` it pushes a
fresh image (to ``--storm-push-to``, the upstream of a caching ``--host``, or to ``--host``) or
takes ``--storm-image``, picks the release time, tells every load process, waits until each has
reported its StormUsers' pulls (or the storm's time is up), and records the storm: the
``STORM push`` and ``STORM complete`` rows, and one entry of ``PREFIX_storms.json``.

The release time is a wall-clock time a little ahead (``RELEASE_LEAD``): each worker releases its
StormUsers at that time by its own clock, so the workers' hosts must share a clock (one host, or
NTP-synchronised hosts: NTP keeps them within a few milliseconds on a LAN)."""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event
from locust.runners import MasterRunner, WorkerRunner

from ..flows.push import push
from ..reference import Reference, Registry, parse_reference
from ..sources.synthetic import synthetic_image_of
from ..wiring.connect import make_client
from ..wiring.gevent_runner import GeventRunner
from ..workload.server.dialects import ServerView
from ..workload.storms import Storm, StormPull, blob_gets, upstream_gets
from .observer import CauseError, LocustObserver, failure_cause
from .registry_watch import without_credentials
from .storm_crowd import STORM_MESSAGE, Announcement

if TYPE_CHECKING:
    from .run import LoadRun

log = logging.getLogger("regload")
RELEASE_LEAD = 1.0  # seconds between the announcement and the release: the message reaches every worker
SETTLE_POLL = 0.5  # seconds between two scrapes of the upstream while its blob GETs still grow
SETTLE_MAX = 10.0  # at most this long: a cache may still be filling itself after the clients are done


class StormConductor:
    def __init__(self, run: LoadRun) -> None:
        self.run = run
        self.storms: list[Storm] = []
        self.started = time.perf_counter()
        self._greenlet: gevent.Greenlet | None = None
        self._spawned = Event()
        self._reports: dict[str, dict[str, Any]] = {}
        self._expected = 0
        self._reported = Event()
        self._number = 0
        self._rng = random.Random()

    @property
    def conducts(self) -> bool:
        """Storms are conducted here: on the master, or in a single process."""
        return not isinstance(self.run.environment.runner, WorkerRunner)

    @property
    def active(self) -> bool:
        from .storm_user import StormUser

        return any(issubclass(cls, StormUser) for cls in self.run.environment.user_classes or ())

    def start_test(self) -> None:
        self.stop_test()
        self.storms, self._reports, self._number = [], {}, 0
        self.started = time.perf_counter()
        self._spawned = Event()
        if self.conducts and self.active:
            self._greenlet = gevent.spawn(self._conduct)

    def spawning_complete(self) -> None:
        self._spawned.set()

    def stop_test(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None
        if self.storms and not self.storms[-1].recorded:  # the test ended during a storm
            storm = self.storms[-1]
            storm.cut_short = True
            self._merge(storm, self._reports.values())

    def collect(self, process: str, report: dict[str, Any]) -> None:
        """A load process's pulls of the current storm (a late report of an old storm is dropped)."""
        if report.get("storm") != self._number:
            return
        self._reports[process] = report
        if len(self._reports) >= self._expected:
            self._reported.set()

    def on_done_message(self, environment: Any, msg: Any, **_: Any) -> None:
        self.collect(msg.node_id, msg.data)

    # -- the storms ------------------------------------------------------------------------------

    def _conduct(self) -> None:
        settings = self.run.settings.storms
        self._spawned.wait(settings.every)  # the first storm once the StormUsers are there
        first = time.perf_counter()
        while True:
            self._number += 1
            deadline = first + self._number * settings.every
            try:
                self._storm(self._number, deadline)
            except gevent.GreenletExit:
                raise
            except Exception:  # a bug: said once per storm, the next storm still comes
                log.exception("regload: storm %d could not be conducted", self._number)
            gevent.sleep(max(0.0, deadline - time.perf_counter()))

    def _storm(self, number: int, deadline: float) -> None:
        run, settings = self.run, self.run.settings.storms
        repository, reference, pushed_to, push_ms, blobs = self._image(number)
        if reference is None:
            return  # the push failed: counted in STORM push, no storm without its image
        upstream = self.upstream_metrics()
        before = self._scrape(upstream)  # the upstream's blob GETs so far
        release_at = time.time() + RELEASE_LEAD
        storm = Storm(number, f"{repository}:{reference}", release_at, self._since_start() + RELEASE_LEAD)
        storm.pushed_to, storm.push_ms, storm.blobs = pushed_to, push_ms, blobs
        storm.through_cache = settings.push_to is not None or upstream is not None
        self.storms.append(storm)
        announcement = Announcement(number, repository, reference, release_at, settings.jitter)
        self._reports, self._reported = {}, Event()
        runner = run.environment.runner
        if isinstance(runner, MasterRunner):
            self._expected = runner.worker_count
            runner.send_message(STORM_MESSAGE, announcement.to_message())
        else:
            self._expected = 1
            run.crowd.announce(announcement.to_message())
        if self._expected:
            self._reported.wait(max(0.0, deadline - time.perf_counter()))
        self._record(storm, self._reports.values())
        if upstream is not None:
            self._amplification(storm, upstream, before, deadline)
        elif settings.push_to is not None:
            storm.amplification_note = "unknown: name the upstream's metrics, --registry-metrics upstream=URL"
        else:
            storm.amplification_note = "no upstream: the image was pushed to --host itself"

    def _image(self, number: int) -> tuple[str, str | None, str | None, float | None, int | None]:
        """The storm's image: --storm-image as it is, or a fresh one pushed (``STORM push``)."""
        run, settings = self.run, self.run.settings.storms
        if settings.image is not None:
            ref = parse_reference(settings.image, registry=Registry.from_url(run.environment.host))
            return ref.repository, ref.reference, None, None, None
        target = settings.push_to or run.environment.host
        seed = int(time.time() * 1000) & 0xFFFFFFFF
        sizes = [settings.layer_size.sample(self._rng) for _ in range(settings.layers)]
        repository, tag = f"{run.settings.images.prefix}-storm", f"storm-{number}-{seed:08x}"
        registry = Registry.from_url(target)
        observer = LocustObserver(run.environment.events, run.hints)
        client = make_client(registry, run.settings.client, observer=observer)
        image = synthetic_image_of(sizes, seed, ratio=run.settings.images.gzip_ratio)
        started = time.perf_counter()
        try:
            ref = Reference(registry, repository).with_reference(tag)
            result = push(client, ref, image, GeventRunner(), run.settings.push)
        except Exception as e:
            took = time.perf_counter() - started
            observer.operation("STORM", took, 0, e, name="push")
            log.error(
                "regload: storm %d: the push of its image failed: %s; no storm this time", number, failure_cause(e)
            )
            return repository, None, None, None, None
        finally:
            image.close()
            client.close()
        took = time.perf_counter() - started
        observer.operation("STORM", took, result.bytes, None, name="push")
        return repository, tag, without_credentials(target), took * 1000, len(result.blobs)

    def _merge(self, storm: Storm, reports: Any) -> None:
        for report in reports:
            storm.clients += int(report.get("clients", 0))
            storm.pulls += [StormPull(float(d), float(t), c) for d, t, c in report.get("pulls", ())]
            if report.get("blobs"):
                storm.blobs = int(report["blobs"])
        storm.recorded = True

    def _record(self, storm: Storm, reports: Any) -> None:
        """The processes' pulls in the storm, and its ``STORM complete`` row."""
        self._merge(storm, reports)
        waited = storm.last_done_ms if storm.last_done_ms is not None else 0.0
        error = None
        if storm.clients == 0:
            error = CauseError("no StormUser was running at the release")
        elif storm.missing:
            error = CauseError(f"{storm.missing} of {storm.clients} clients not done before the next storm")
            waited = max(waited, (time.time() - storm.release_at) * 1000)
        elif storm.failures:
            error = CauseError(f"{storm.failures} of {storm.clients} pulls failed")
        self.run.environment.events.request.fire(
            request_type="STORM",
            name="complete",
            response_time=waited,
            response_length=0,
            exception=error,
            context={},
        )

    # -- the upstream's side -----------------------------------------------------------------------

    def upstream_metrics(self) -> str | None:
        """The upstream's metrics URL: the one named ``upstream`` (``--registry-metrics
        upstream=URL``), else the only one on the host of ``--storm-push-to`` when ``--host`` is
        another host; None when no upstream is known."""
        settings = self.run.settings
        named = settings.metrics.named("upstream")
        if named is not None or settings.storms.push_to is None:
            return named
        from urllib.parse import urlsplit

        upstream_host = urlsplit(settings.storms.push_to).hostname
        cache_host = urlsplit(self.run.environment.host or "").hostname
        same = [u for u in settings.metrics.urls if urlsplit(u).hostname == upstream_host]
        return same[0] if len(same) == 1 and upstream_host != cache_host else None

    def _scrape(self, url: str | None) -> ServerView | None:
        return self.run.registry_watch.scrape(url) if url is not None else None

    def _amplification(self, storm: Storm, url: str, before: ServerView | None, deadline: float) -> None:
        """The upstream's blob GETs from just before the release until they stop growing (a cache
        may still be filling itself after its clients are done), over the image's blobs."""
        after = self._scrape(url)
        settle_until = min(deadline, time.perf_counter() + SETTLE_MAX)
        while after is not None and time.perf_counter() < settle_until:
            gevent.sleep(SETTLE_POLL)
            again = self._scrape(url)
            if again is None or blob_gets(again) == blob_gets(after):
                break
            after = again
        storm.upstream_blob_gets, storm.amplification_note = upstream_gets(before, after)

    def _since_start(self) -> float:
        return time.perf_counter() - self.started
