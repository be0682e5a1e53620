"""How a trace's anonymised objects become real ones in the registry under test, consistently
in every process and every run.

- ``<user>/<repo>`` → ``<prefix>-trace/<16 hex of its sha256>``: a valid repository name.
- A manifest's tag → the tag itself when it is a valid tag (anonymised tags are hex), else a hash.
- A blob's anonymised digest → a blob of its recorded size whose bytes are noise keyed by that
  name: the same anonymised digest is the same blob in every repository (a layer shared by
  images), as in the registry the trace came from. An upload's commit, logged as
  ``PUT …/blobs/uploads/<session>``, names its blob ``uploads/<session>``: each upload pushes a
  blob of its own, as a push of a new layer does.
- A manifest → an OCI manifest over two small blobs of its repository, with an annotation that
  names the tag and pads it to the recorded size (GETs of it then move as many bytes).

The plan lists what the replay's GETs need (``warm_blobs``, ``warm_manifests``): a warm-up creates
it before the replay, outside the stats. A blob's size is the largest body a GET of it wrote
(a 307 redirect writes none), else what a PUT record says (``http.request.contentlength``, with
its PATCHes' for an upload session; IBM's traces do not carry it), else unknown: the replay then
draws it from ``--push-layer-size``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from ... import mediatypes as mt
from ...digest import Digest, Tally
from ...manifest import Descriptor
from ...sources.base import BytesBlob, StreamDigestedBlob
from ...sources.noise import noise
from ...streams import Chunk, checked
from .records import Trace

MAX_MANIFEST = 4 << 20  # distribution refuses manifests above 4 MiB
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
ObjectKey = tuple[str, str]  # (anonymised repository, anonymised name)


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def repository_name(prefix: str, anonymised: str) -> str:
    return f"{prefix.rstrip('/')}-trace/{_short_hash(anonymised)}"


def tag_name(anonymised: str) -> str:
    return anonymised if TAG.match(anonymised) else f"t-{_short_hash(anonymised)}"


@dataclass
class TracePlan:
    """What a replay of ``trace`` needs in the registry."""

    blob_sizes: dict[str, int] = field(default_factory=dict)  # anonymised blob name → bytes
    manifest_sizes: dict[ObjectKey, int] = field(default_factory=dict)
    warm_blobs: list[ObjectKey] = field(default_factory=list)  # blobs GETs read, per repository
    warm_manifests: list[ObjectKey] = field(default_factory=list)
    manifest_repositories: list[str] = field(default_factory=list)  # repositories with manifest records
    unsized: int = 0  # blobs GETs read that no record gives a size

    @classmethod
    def of(cls, trace: Trace) -> TracePlan:
        plan = cls()
        blobs: dict[ObjectKey, None] = {}
        manifests: dict[ObjectKey, None] = {}
        manifest_repos: dict[str, None] = {}
        for r in trace.records:
            if r.kind == "blob":
                if r.size is not None:
                    plan.blob_sizes[r.name] = max(r.size, plan.blob_sizes.get(r.name, 0))
                if r.method == "GET":
                    blobs[(r.repository, r.name)] = None
            else:
                manifest_repos[r.repository] = None
                if r.size is not None:
                    key = (r.repository, r.name)
                    plan.manifest_sizes[key] = max(r.size, plan.manifest_sizes.get(key, 0))
                if r.method == "GET":
                    manifests[(r.repository, r.name)] = None
        plan.warm_blobs = list(blobs)
        plan.warm_manifests = list(manifests)
        plan.manifest_repositories = list(manifest_repos)
        plan.unsized = len({name for _, name in plan.warm_blobs if name not in plan.blob_sizes})
        return plan

    def blob_size(self, name: str | ObjectKey, default: int = 0) -> int:
        key = name[1] if isinstance(name, tuple) else name
        return self.blob_sizes.get(key, default)

    def repositories(self) -> set[str]:
        return {repo for repo, _ in self.warm_blobs} | {repo for repo, _ in self.warm_manifests}


class TraceBlob(StreamDigestedBlob):
    """The blob an anonymised digest stands for: ``size`` bytes of noise keyed by its name. Its
    digest is learnt on the first full pass and kept."""

    media_type = mt.OCI_LAYER_TAR  # opaque to the registry: blobs carry no type

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self._digest: Digest | None = None

    def open(self) -> Iterator[Chunk]:
        chunks = noise(b"regload-trace-v1\0" + self.name.encode(), self.size)
        if self._digest is not None:
            yield from chunks
            return
        tally = Tally()
        yield from checked(chunks, tally)
        self._digest = tally.digest()


def base_blobs(repository: str) -> tuple[BytesBlob, BytesBlob]:
    """The config and layer every replayed manifest of ``repository`` (anonymised) refers to."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "config": {"Labels": {"org.regload.workload.trace.repository": _short_hash(repository)}},
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    layer = b"regload trace layer of " + repository.encode()
    return BytesBlob(mt.OCI_CONFIG, config), BytesBlob(mt.OCI_LAYER_TAR, layer)


def manifest_for(repository: str, tag: str, size: int | None) -> bytes:
    """The manifest replayed under ``tag`` of ``repository`` (anonymised): about ``size`` bytes
    when the trace recorded one (never less than the smallest such manifest, never above 4 MiB)."""
    config, layer = base_blobs(repository)

    def render(padding: str) -> bytes:
        doc = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": _descriptor(config.descriptor()),
            "layers": [_descriptor(layer.descriptor())],
            "annotations": {"org.regload.workload.trace.tag": tag, "org.regload.workload.trace.padding": padding},
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    raw = render("")
    if size is not None and size > len(raw):
        raw = render("." * (min(size, MAX_MANIFEST) - len(raw)))
    return raw


def _descriptor(desc: Descriptor) -> dict[str, object]:
    return {"mediaType": desc.media_type, "digest": str(desc.digest), "size": desc.size}
