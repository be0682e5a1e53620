"""Pull sinks: where a pulled image goes (nowhere, a rootfs directory, an OCI layout, a docker-archive tar)."""

from __future__ import annotations

from ..errors import UsageError
from .base import PulledImage, Sink
from .discard import DiscardSink
from .docker_archive import DockerArchiveSink
from .oci_layout import OciLayoutSink
from .rootfs import RootfsSink

FORMATS = ("rootfs", "oci", "docker-archive")

__all__ = [
    "FORMATS",
    "DiscardSink",
    "DockerArchiveSink",
    "OciLayoutSink",
    "PulledImage",
    "RootfsSink",
    "Sink",
    "make_sink",
]


def make_sink(format: str | None, output: str | None, reference_repo: str, tag: str | None) -> Sink:
    """The sink for ``--format``/``--output``: no output discards; no format means ``rootfs``.

    ``reference_repo`` and ``tag`` name the image inside the output: ``repo:tag`` in a
    docker-archive (no name when pulled by digest), the ``ref.name`` annotation (``tag`` or
    ``latest``) in an OCI layout.
    """
    if output is None:
        return DiscardSink()
    kind = format or "rootfs"
    if kind == "rootfs":
        return RootfsSink(output)
    if kind == "oci":
        return OciLayoutSink(output, tag)
    if kind == "docker-archive":
        return DockerArchiveSink(output, f"{reference_repo}:{tag}" if tag else None)
    raise UsageError(f"unknown output format {format!r} (expected one of: {', '.join(FORMATS)})")
