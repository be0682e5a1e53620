"""What a client sent, as recorded by the fault proxy (``FaultProxy(record=True)``), reduced to
what two clients can be compared on: requests as (method, path template), the first and the
last, the manifest ``Accept`` fields, the User-Agent, and peak concurrency."""

from __future__ import annotations

import collections
import re
from collections.abc import Callable, Sequence

from tests.support.fault_proxy import Exchange

_DIGEST = r"sha256:[0-9a-f]{64}"
_TEMPLATES = (
    (re.compile(r"^/v2/$"), "/v2/"),
    (
        re.compile(r"^/v2/.+/blobs/uploads/\?(?=.*mount=)(?=.*from=)"),
        "/v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>",
    ),
    (re.compile(r"^/v2/.+/blobs/uploads/\?.*digest="), "/v2/<name>/blobs/uploads/?digest=<digest>"),
    (re.compile(r"^/v2/.+/blobs/uploads/$"), "/v2/<name>/blobs/uploads/"),
    (re.compile(r"^/v2/.+/blobs/uploads/[^/?]+\?(?=.*digest=)"), "/v2/<name>/blobs/uploads/<session>?digest=<digest>"),
    (re.compile(r"^/v2/.+/blobs/uploads/[^/?]+(\?.*)?$"), "/v2/<name>/blobs/uploads/<session>"),
    (re.compile(rf"^/v2/.+/blobs/{_DIGEST}$"), "/v2/<name>/blobs/<digest>"),
    (re.compile(rf"^/v2/.+/manifests/{_DIGEST}$"), "/v2/<name>/manifests/<digest>"),
    (re.compile(r"^/v2/.+/manifests/[^/]+$"), "/v2/<name>/manifests/<tag>"),
    (re.compile(r"^/v2/.+/tags/list"), "/v2/<name>/tags/list"),
)

Request = tuple[str, str]  # (method, path template)


def template(exchange: Exchange) -> Request:
    """``("GET", "/v2/<name>/manifests/<tag>")``: the request with its names, digests and
    sessions taken out. A target no template knows is kept as it is."""
    for pattern, name in _TEMPLATES:
        if pattern.search(exchange.target):
            return exchange.method, name
    return exchange.method, exchange.target


def requests(exchanges: Sequence[Exchange]) -> list[Request]:
    return [template(e) for e in exchanges]


def request_counts(exchanges: Sequence[Exchange]) -> dict[Request, int]:
    """How many times each (method, template) was sent: the same for two clients that send the
    same requests in any interleaving."""
    return dict(collections.Counter(requests(exchanges)))


def manifest_accept(exchanges: Sequence[Exchange]) -> list[str]:
    """The ``Accept`` fields of the first manifest request, one entry per field, in order."""
    first = next(e for e in exchanges if template(e)[1].startswith("/v2/<name>/manifests/"))
    return first.get_all("Accept")


def user_agents(exchanges: Sequence[Exchange]) -> set[str]:
    return {e.get("User-Agent") or "" for e in exchanges}


def peak_concurrency(exchanges: Sequence[Exchange], which: Callable[[Request], bool] = lambda r: True) -> int:
    """The most requests of ``which`` in flight at once, by when the proxy read each one's head
    and sent its answer (an answer sent at the moment another head arrives does not overlap)."""
    edges = []
    for e in exchanges:
        if which(template(e)):
            edges += [(e.started, 1), (e.ended, -1)]
    peak = current = 0
    for _, step in sorted(edges, key=lambda edge: (edge[0], edge[1])):  # ends before starts at a tie
        current += step
        peak = max(peak, current)
    return peak


def blob_gets(request: Request) -> bool:
    return request == ("GET", "/v2/<name>/blobs/<digest>")


def uploads(request: Request) -> bool:
    """The requests that carry blob data: a PATCH, or a PUT that commits a session."""
    return request[0] in ("PATCH", "PUT") and "/blobs/uploads/" in request[1]
