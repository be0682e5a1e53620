"""Reading IBM-format registry traces.

A trace file is a JSON array of records (optionally gzip-compressed, ``.gz``), each with
``timestamp`` (ISO-8601 with milliseconds), ``http.request.method``, ``http.request.uri``
(anonymised: ``v2/<user>/<repo>/manifests/<tag>`` or ``v2/<user>/<repo>/blobs/<digest>``),
``http.request.duration``, ``http.response.status``, ``http.response.written`` and a few fields a
replay does not need (``remoteaddr``, ``useragent``, ``host``, ``id``).

As the replayer published with the study does, a replay keeps GETs and PUTs of manifests and
blobs that succeeded; everything else is counted under a reason and skipped. Files are parsed
one record at a time: a trace of millions of records does not sit in memory as JSON objects.

Uploads are written as the registry logs them: distribution logs the request URI of each step of
an upload session, so a push's blob is ``POST v2/<repo>/blobs/uploads/``, ``PATCH …/uploads/<id>``
(maybe several) and the commit ``PUT …/uploads/<id>`` (its ``?digest=`` is stripped in IBM's
traces). The commit is kept as a ``PUT blob`` named ``uploads/<id>`` — a fresh blob per upload —
and replayed as a whole upload (POST, PATCH, PUT). The POST and PATCHes are counted as ``upload
part (replayed with its PUT)``: replaying them too would upload each blob twice (a POST answered
201 is a mount, which no PUT follows: ``blob mount (not replayed)``). The upload's size is what its
PATCHes and PUT carried (``http.request.contentlength``: a docker push sends the bytes in a PATCH
and commits with an empty PUT), the PATCHes remembered for the last ``MAX_OPEN_UPLOADS`` sessions
of a file; when no record says, the replay draws it from ``--push-layer-size``.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from ...errors import UsageError
from ...units import parse_duration

KINDS = ("manifest", "blob")
METHODS = ("GET", "PUT")
UPLOAD_PARTS = ("POST", "PATCH")  # of an upload session, whose PUT commits it
UPLOAD_PART = "upload part (replayed with its PUT)"
MOUNT = "blob mount (not replayed)"
MAX_OPEN_UPLOADS = 10_000  # sessions whose PATCHes' bytes wait for their PUT (one abandoned never sees it)
READ_SIZE = 1 << 20
_DECODER = json.JSONDecoder()


@dataclass(slots=True)
class TraceRecord:
    """One request worth replaying. ``offset``: seconds after the trace's first record (read
    as seconds since the epoch, then moved once the first record is known)."""

    offset: float
    method: str  # GET or PUT
    kind: str  # manifest or blob
    repository: str  # the anonymised "<user>/<repo>"
    name: str  # the anonymised tag or digest, or uploads/<session> for an upload's commit
    size: int | None  # bytes written (a GET's body); None when the record has none
    status: int


@dataclass
class Trace:
    records: list[TraceRecord]
    skipped: Counter[str] = field(default_factory=Counter)  # reason → records left out
    files: tuple[str, ...] = ()
    start: datetime | None = None  # the first record's time

    @property
    def duration(self) -> float:
        return self.records[-1].offset if self.records else 0.0


@dataclass(frozen=True)
class Window:
    """Keep records from ``start`` to ``end`` seconds after the trace's first record."""

    start: float = 0.0
    end: float = float("inf")

    @classmethod
    def parse(cls, text: str, what: str = "--trace-window") -> Window:
        """``START-END`` or ``START-`` in seconds or with a unit: ``60-120``, ``1m-2m``, ``30s-``."""
        low, sep, high = text.strip().partition("-")
        if not sep:
            raise UsageError(f"invalid {what} {text!r}: expected START-END, e.g. 60-120 or 1m-2m")
        start = parse_duration(low, what) if low.strip() else 0.0
        end = parse_duration(high, what) if high.strip() else float("inf")
        if end <= start:
            raise UsageError(f"invalid {what} {text!r}: the end is not after the start")
        return cls(start, end)

    def __contains__(self, offset: float) -> bool:
        return self.start <= offset <= self.end


def parse_uri(uri: str) -> tuple[str, str, str] | None:
    """(repository, kind, name) of ``v2/<repo…>/manifests|blobs/<name>``, kind ``upload`` and the
    session id (empty for the POST that opens one) for ``v2/<repo…>/blobs/uploads/<id>``, or None
    for another endpoint (tags, catalog, the base). The repository may have any number of parts."""
    parts = uri.split("?", 1)[0].lstrip("/").split("/")
    if len(parts) < 4 or parts[0] != "v2":
        return None
    if len(parts) >= 5 and parts[-3:-1] == ["blobs", "uploads"]:
        return "/".join(parts[1:-3]), "upload", parts[-1]
    kind = {"manifests": "manifest", "blobs": "blob"}.get(parts[-2])
    if kind is None or parts[-3] == "blobs" or not parts[-1]:
        return None
    return "/".join(parts[1:-2]), kind, parts[-1]


def parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iter_json_array(stream: IO[str], path: str) -> Iterator[Any]:
    """The elements of a JSON array, decoded one by one from ``stream``."""
    buffer, pos, started = "", 0, False
    while True:
        # Skip separators; read more when the buffer runs out.
        while True:
            while pos < len(buffer) and buffer[pos] in " \t\r\n,":
                pos += 1
            if pos < len(buffer):
                break
            more = stream.read(READ_SIZE)
            if not more:
                if not started:
                    raise UsageError(f"{path}: not a trace: the file is empty")
                raise UsageError(f"{path}: the JSON array is not closed (truncated file?)")
            buffer, pos = buffer[pos:] + more, 0
        if not started:
            if buffer[pos] != "[":
                raise UsageError(f"{path}: not a trace: expected a JSON array of records")
            started, pos = True, pos + 1
            continue
        if buffer[pos] == "]":
            return
        while True:
            try:
                value, end = _DECODER.raw_decode(buffer, pos)
                break
            except json.JSONDecodeError as e:
                more = stream.read(READ_SIZE)
                if not more:
                    raise UsageError(f"{path}: invalid JSON at character {e.pos}: {e.msg}") from None
                buffer, pos = buffer[pos:] + more, 0
        yield value
        pos = end


def _open(path: str) -> IO[str]:
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


class _OpenUploads:
    """The bytes the PATCHes of each upload session sent, kept until its PUT commits it: at most
    ``MAX_OPEN_UPLOADS`` sessions, the oldest forgotten (an abandoned upload never sees its PUT)."""

    def __init__(self) -> None:
        self._sent: dict[tuple[str, str], int] = {}

    def patch(self, key: tuple[str, str], size: int | None) -> None:
        if not size:
            return
        if key not in self._sent and len(self._sent) >= MAX_OPEN_UPLOADS:
            del self._sent[next(iter(self._sent))]
        self._sent[key] = self._sent.get(key, 0) + size

    def commit(self, key: tuple[str, str], size: int | None) -> int | None:
        """The upload's size: its PATCHes' bytes and the PUT's own (a last chunk may ride on the
        commit), or None when no record says."""
        sent = [n for n in (self._sent.pop(key, None), size) if n]
        return sum(sent) if sent else None


def _records_of(path: str, skipped: Counter[str], names: dict[str, str]) -> Iterator[TraceRecord]:
    """Every record worth replaying, its offset in seconds since the epoch. ``names`` keeps one
    copy of each repository and object name: a trace names the same ones again and again."""
    methods = {m: m for m in (*METHODS, *UPLOAD_PARTS)}
    uploads = _OpenUploads()
    try:
        with _open(path) as stream:
            for i, item in enumerate(iter_json_array(stream, path)):
                if not isinstance(item, dict):
                    raise UsageError(f"{path}: record {i} is not a JSON object")
                asked = str(item.get("http.request.method", "")).upper()
                method = methods.get(asked)
                parsed = parse_uri(str(item.get("http.request.uri", "")))
                upload = parsed is not None and parsed[1] == "upload"
                if method is None or (method in UPLOAD_PARTS and not upload):
                    skipped[f"method {asked or '-'}"] += 1
                    continue
                if parsed is None or (upload and method == "GET"):  # GET …/uploads/<id>: its status
                    skipped["not a manifest or blob"] += 1
                    continue
                status = _integer(item.get("http.response.status"), path, i, "http.response.status")
                if status is None or not 200 <= status < 400:
                    skipped[f"status {status}"] += 1
                    continue
                stamp = item.get("timestamp")
                if not isinstance(stamp, str):
                    raise UsageError(f"{path}: record {i} has no timestamp")
                try:
                    when = parse_timestamp(stamp)
                except ValueError:
                    raise UsageError(f"{path}: record {i}: invalid timestamp {stamp!r}") from None
                if method == "GET":  # the body a 200 wrote (a 307 to object storage writes none)
                    written = _integer(item.get("http.response.written"), path, i, "http.response.written")
                    size = written if status == 200 else None
                else:  # not in IBM's schema; regload's synthetic traces record it
                    size = _integer(item.get("http.request.contentlength"), path, i, "http.request.contentlength")
                repository, kind, name = parsed
                if upload:  # a step of an upload session: see the module's docstring
                    kind, name = "blob", f"uploads/{name}"  # the session names a fresh blob
                    if method != "PUT":
                        uploads.patch((repository, name), size if method == "PATCH" else None)
                        skipped[MOUNT if method == "POST" and status == 201 else UPLOAD_PART] += 1
                        continue
                    size = uploads.commit((repository, name), size)
                repository = names.setdefault(repository, repository)
                name = names.setdefault(name, name)
                yield TraceRecord(when.timestamp(), method, kind, repository, name, size, status)
    except OSError as e:
        if isinstance(e, gzip.BadGzipFile):
            raise UsageError(f"{path}: not a gzip file: {e}") from None
        raise UsageError(f"cannot read trace {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a trace: the file is not UTF-8 text") from None


def _integer(value: Any, path: str, index: int, key: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{path}: record {index}: {key} is not a number: {value!r}") from None


def load_trace(paths: Sequence[str], window: Window = Window()) -> Trace:
    """The replayable records of ``paths``, merged in time order (files of several data centres
    or days share one clock), with offsets from the first one, cut to ``window``."""
    if not paths:
        raise UsageError("no trace file given")
    skipped: Counter[str] = Counter()
    names: dict[str, str] = {}
    rows = [row for path in paths for row in _records_of(path, skipped, names)]
    rows.sort(key=lambda row: row.offset)
    if not rows:
        return Trace([], skipped, tuple(paths))
    start = rows[0].offset
    records = []
    for row in rows:
        # Milliseconds, as recorded: no float noise from the epoch's size in the offsets.
        offset = round(row.offset - start, 3)
        if offset not in window:
            skipped["outside the window"] += 1
            continue
        row.offset = round(offset - window.start, 3)
        records.append(row)
    return Trace(records, skipped, tuple(paths), datetime.fromtimestamp(start, UTC))
