"""Maintenance windows during a run (``--event``), on the master or the one process.

At each event's time a greenlet snapshots every stats row and starts the event's shell command
(gevent's subprocess: the event loop never waits on it), keeps the last lines of its output, and
snapshots again when it exits (or after ``for=``); the phases are the differences between those
snapshots (``regload.workload.maintenance``). A command that cannot start or fails is said in one
line; the load goes on. At the test's stop a command still running is terminated, and so marked.

The events come from the command line (or config file) only: Locust's web form can post any
option, and an ``--event`` posted there would run a command on this host. A changed value is
ignored, with a warning.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import gevent
from gevent import subprocess
from gevent.pool import Group

from ..workload.maintenance import Event, Phase, RowCounts, Snapshot, Window, phases, redact

if TYPE_CHECKING:
    from .run import LoadRun

log = logging.getLogger("regload")
TAIL_LINES = 20
MAX_LINE = 1000  # bytes kept of one output line
TERMINATE_WAIT = 5.0  # seconds between SIGTERM and SIGKILL of a command still running at the stop

PENDING, RUNNING, DONE, FAILED, STOPPED, NOT_REACHED = "pending", "running", "done", "failed", "stopped", "not reached"


@dataclass
class EventRecord:
    """What became of one event in this test."""

    event: Event
    status: str = PENDING
    start: Snapshot | None = None
    end: Snapshot | None = None
    exit_status: int | None = None  # a negative number: killed by that signal
    error: str = ""  # why it could not start
    output: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))

    def window(self, now: Snapshot) -> Window | None:
        """Its window, or None before it opened. Open at ``now``, or closed by the test's stop
        (``now`` then holds the stats that came after it), it lasts until ``now``."""
        if self.start is None:
            return None
        closed = self.end is not None and self.end.t < now.t and self.status != STOPPED
        return Window(self.event.name, self.start, self.end if closed and self.end else now)


class MaintenanceWindows:
    def __init__(self, run: LoadRun) -> None:
        self.run = run
        self.events = run.settings.events.schedule  # as given at start (see the module's docstring)
        self.records: list[EventRecord] = []
        self.first = Snapshot(0.0)
        self.last: Snapshot | None = None  # at the test's stop
        self._started = time.perf_counter()
        self.started_at = time.time()  # the test's start on the wall clock (for audit files, logs)
        self._greenlets = Group()

    @property
    def active(self) -> bool:
        return bool(self.records)

    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def start_test(self) -> None:
        """The test's start: Locust has just cleared its stats, so the first snapshot is empty."""
        self._greenlets.kill(block=True)
        if self.run.settings.events.schedule != self.events:
            log.warning(
                "regload: --event is taken from the command line only (it runs commands): the form's is ignored"
            )
        self._started, self.started_at = time.perf_counter(), time.time()
        self.first, self.last = Snapshot(0.0), None
        self.records = [EventRecord(event) for event in self.events]
        for record in self.records:
            self._greenlets.spawn(self._run, record)

    def stop_test(self) -> None:
        """``test_stopping`` (and ``test_stop``): a window still open closes here."""
        if not self.records or self.last is not None:
            return
        self.last = self.snapshot()
        self._greenlets.kill(block=True, timeout=TERMINATE_WAIT + 5)
        for record in self.records:
            if record.status == PENDING:
                record.status = NOT_REACHED

    def phases(self, final: bool = False) -> list[Phase]:
        """The phases so far (live: until now); ``final``: with the last stats the master holds,
        over the test's time."""
        now = self.snapshot()
        end = self.last.t if self.last is not None else now.t
        last = Snapshot(end, now.rows) if final or self.last is None else self.last
        windows = [w for w in (r.window(last) for r in self.records) if w is not None]
        return phases(self.first, windows, last, end)

    def spans(self) -> list[tuple[str, float, float]]:
        """Each window that opened: its name, start and end (now while it is open), for the charts."""
        now = self.elapsed() if self.last is None else self.last.t
        return [
            (r.event.name, r.start.t, min(r.end.t, now) if r.end is not None else now)
            for r in self.records
            if r.start is not None
        ]

    def snapshot(self) -> Snapshot:
        rows = {
            (entry.method, entry.name): RowCounts(entry.num_requests, entry.num_failures, dict(entry.response_times))
            for entry in list(self.run.environment.stats.entries.values())
        }
        return Snapshot(self.elapsed(), rows)

    def secrets(self) -> tuple[str, ...]:
        credentials = self.run.settings.client.credentials
        return (credentials.password,) if credentials is not None and credentials.password else ()

    def shown(self, text: str) -> str:
        return redact(text, self.secrets())

    # -- one event ----------------------------------------------------------------------------------

    def _run(self, record: EventRecord) -> None:
        event = record.event
        gevent.sleep(max(0.0, event.at - self.elapsed()))
        record.start = self.snapshot()
        record.status = RUNNING
        try:
            if event.command is None:
                log.info(
                    "regload event %s: window opens at %.1f s for %g s", event.name, record.start.t, event.duration
                )
                gevent.sleep(event.duration or 0.0)
                record.status = DONE
            else:
                log.info(
                    "regload event %s: at %.1f s, running: %s", event.name, record.start.t, self.shown(event.command)
                )
                self._command(record, event.command)
        except gevent.GreenletExit:
            if record.status == RUNNING:
                record.status = STOPPED  # the test ended inside the window
            raise
        finally:
            record.end = self.snapshot()
        if record.status == DONE:
            log.info("regload event %s: window closed after %.1f s", event.name, record.end.t - record.start.t)

    def _command(self, record: EventRecord, command: str) -> None:
        name = record.event.name
        try:
            process = subprocess.Popen(
                command,
                shell=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: terminated with its children
            )
        except OSError as e:
            record.status, record.error = FAILED, f"cannot start the command: {e.strerror or e}"
            log.error("regload event %s: %s; the load test goes on", name, record.error)
            return
        reader = gevent.spawn(self._read, record, process)
        try:
            record.exit_status = process.wait()  # the window ends with the command, whatever holds its output
        except gevent.GreenletExit:
            record.status = STOPPED
            record.exit_status = _terminate(process)
            log.warning("regload event %s: the test stopped while its command ran: terminated", name)
            raise
        finally:
            reader.join(timeout=1.0)
            reader.kill(block=True, timeout=1.0)
            if process.stdout is not None:
                process.stdout.close()
        seconds = self.elapsed() - (record.start.t if record.start else 0.0)
        if record.exit_status == 0:
            record.status = DONE
            log.info("regload event %s: the command exited 0 after %.1f s", name, seconds)
            return
        record.status = FAILED
        last = f": {record.output[-1]}" if record.output else ""
        log.error(
            "regload event %s: the command exited with status %s after %.1f s%s; the load test goes on",
            name,
            record.exit_status,
            seconds,
            last,
        )

    def _read(self, record: EventRecord, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        rest_of_long_line = False  # a line is read MAX_LINE bytes at a time: a huge one never sits in memory
        while raw := process.stdout.readline(MAX_LINE):
            if not rest_of_long_line:
                record.output.append(self.shown(raw.decode(errors="replace").rstrip("\r\n")))
            rest_of_long_line = not raw.endswith(b"\n")


def _terminate(process: subprocess.Popen) -> int | None:
    """SIGTERM to the command's process group, SIGKILL if it is still there after a while."""
    for sig, wait in ((signal.SIGTERM, TERMINATE_WAIT), (signal.SIGKILL, TERMINATE_WAIT)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return int(process.wait(timeout=wait))
        except subprocess.TimeoutExpired:
            continue
    return None
