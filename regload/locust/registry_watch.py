"""Scraping the registry's metrics during a run (``--registry-metrics URL``, repeatable), on the
master or the one process, every ``--registry-metrics-interval`` seconds and once more at the
end; the scrapes of each URL kept in order (``ServerView``: what ``regload.workload.server``
reads off them). A URL that cannot be scraped is logged once and tried again at the next tick:
the run goes on."""

from __future__ import annotations

import base64
import logging
import time
import urllib.error
import urllib.request
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import gevent

from ..workload.server.dialects import ServerView, view
from ..workload.server.scrape import parse

if TYPE_CHECKING:
    from .run import LoadRun

log = logging.getLogger("regload")
SCRAPE_TIMEOUT = 5.0
MAX_SCRAPES = 20_000  # per URL: 11 hours at 2 s; the first scrape is always kept


def without_credentials(url: str) -> str:
    """The URL as reports may show it: no user or password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


class RegistryWatch:
    def __init__(self, run: LoadRun) -> None:
        self.run = run
        self.urls: tuple[str, ...] = ()
        self.first: dict[str, ServerView] = {}
        self.scrapes: dict[str, deque[ServerView]] = {}
        self.failures: dict[str, int] = {}
        self.started = time.perf_counter()
        self._greenlet: gevent.Greenlet | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def active(self) -> bool:
        return bool(self.urls)

    def start_test(self, urls: tuple[str, ...], interval: float) -> None:
        self.stop_test(final=False)
        self.urls = urls
        self.first, self.failures = {}, {}
        self.scrapes = {url: deque(maxlen=MAX_SCRAPES) for url in urls}
        self.started = time.perf_counter()
        if urls:
            self._greenlet = gevent.spawn(self._loop, interval)

    def stop_test(self, final: bool = True) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None
            if final:
                self.scrape_now()

    def views(self, url: str) -> list[ServerView]:
        """Every scrape of ``url`` so far, the first one included."""
        kept = list(self.scrapes.get(url, ()))
        first = self.first.get(url)
        if first is not None and (not kept or kept[0] is not first):
            kept.insert(0, first)
        return kept

    def between(self, url: str, start: float, end: float) -> list[ServerView]:
        """The scrapes of ``url`` from ``start`` to ``end`` (seconds since the test started)."""
        return [v for v in self.scrapes.get(url, ()) if start <= v.at <= end]

    def now(self) -> float:
        return time.perf_counter() - self.started

    def scrape_now(self) -> None:
        for url in self.urls:
            self._scrape(url)

    def scrape(self, url: str) -> ServerView | None:
        """Scrape one of the URLs now (kept with the others); None when it cannot be scraped."""
        return self._scrape(url) if url in self.scrapes else None

    def _loop(self, interval: float) -> None:
        while True:
            self.scrape_now()
            gevent.sleep(interval)

    def _scrape(self, url: str) -> ServerView | None:
        at = self.now()
        request = urllib.request.Request(without_credentials(url))
        parts = urlsplit(url)
        if parts.username is not None:  # the URL's credentials go in a header, never in what is shown
            pair = f"{parts.username}:{parts.password or ''}".encode()
            request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
        try:
            with self._opener.open(request, timeout=SCRAPE_TIMEOUT) as answer:
                text = answer.read().decode("utf-8", "replace")
            scraped = view(parse(text, at))
        except (OSError, urllib.error.URLError, ValueError) as e:
            self.failures[url] = self.failures.get(url, 0) + 1
            if self.failures[url] == 1:
                log.warning("regload: cannot scrape %s: %s (tried again every tick)", without_credentials(url), _why(e))
            return None
        self.first.setdefault(url, scraped)
        self.scrapes[url].append(scraped)
        return scraped


def _why(error: Any) -> str:
    reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
    return str(reason)[:200]
