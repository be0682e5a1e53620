"""The StormUsers of one load process: they wait here for the next storm, are released together
at its release time, and say here when their pull is done. Once every StormUser that was running
when the storm was announced is done (or has stopped), the process reports the storm's pulls to
the conductor: by a message to the master, or directly in a single process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gevent.event import Event

if TYPE_CHECKING:
    from .run import LoadRun

STORM_MESSAGE = "regload_storm"  # master → workers: a storm and its release time
STORM_DONE_MESSAGE = "regload_storm_done"  # worker → master: its StormUsers' pulls


@dataclass
class Announcement:
    number: int
    repository: str
    reference: str
    release_at: float  # wall clock: one host, or NTP-synchronised hosts (docs/storms.md)
    jitter: float
    waiting: set[int] = field(default_factory=set)  # the StormUsers (ids) not done yet
    clients: int = 0
    blobs: int | None = None
    pulls: list[list[Any]] = field(default_factory=list)  # [done_ms, took_ms, cause]
    reported: bool = False

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Announcement:
        return cls(data["storm"], data["repository"], data["reference"], data["release_at"], data["jitter"])

    def to_message(self) -> dict[str, Any]:
        return {
            "storm": self.number,
            "repository": self.repository,
            "reference": self.reference,
            "release_at": self.release_at,
            "jitter": self.jitter,
        }


class StormCrowd:
    def __init__(self, run: LoadRun) -> None:
        self.run = run
        self.users: set[int] = set()
        self.current: Announcement | None = None
        self._news = Event()
        self._stopped = False

    def start_test(self) -> None:
        self.current, self._stopped = None, False
        self.users.clear()  # test_start comes before the test's users are made
        self._news = Event()

    def stop_test(self) -> None:
        self._stopped = True
        self._news.set()  # the waiting StormUsers stop

    def join(self, user: object) -> None:
        self.users.add(id(user))

    def leave(self, user: object) -> None:
        self.users.discard(id(user))
        if self.current is not None:
            self.current.waiting.discard(id(user))
            self._report_when_done(self.current)

    def on_storm_message(self, environment: Any, msg: Any, **_: Any) -> None:
        self.announce(msg.data)

    def announce(self, data: dict[str, Any]) -> None:
        """A storm: every StormUser running now is released at its time and expected to report."""
        storm = Announcement.from_message(data)
        storm.waiting = set(self.users)
        storm.clients = len(storm.waiting)
        self.current = storm
        news, self._news = self._news, Event()
        news.set()
        self._report_when_done(storm)  # no StormUser here: said at once

    def next_storm(self, after: int) -> Announcement | None:
        """The first storm announced after storm number ``after``, waited for; None when the test stops."""
        while not self._stopped:
            storm = self.current
            if storm is not None and storm.number > after:
                return storm
            self._news.wait()
        return None

    def done(self, user: object, storm: Announcement, pull: list[Any], blobs: int | None) -> None:
        if id(user) not in storm.waiting:
            return  # joined after the announcement: its pull is not the storm's
        storm.waiting.discard(id(user))
        storm.pulls.append(pull)
        if blobs is not None:
            storm.blobs = blobs
        self._report_when_done(storm)

    def _report_when_done(self, storm: Announcement) -> None:
        if storm.waiting or storm.reported:
            return
        storm.reported = True
        report = {"storm": storm.number, "clients": storm.clients, "pulls": storm.pulls, "blobs": storm.blobs}
        runner = self.run.environment.runner
        if self.run.storms.conducts:
            self.run.storms.collect("local", report)
        elif runner is not None:
            runner.send_message(STORM_DONE_MESSAGE, report)
