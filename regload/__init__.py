"""regload: docker pull and push as plain Registry HTTP API V2 requests, for load testing registries.

What a script or a scenario of one's own needs, from one place::

    from regload import ClientSettings, DiscardSink, GeventRunner, PullOptions, make_client, parse_reference, pull

    ref = parse_reference("localhost:5000/library/busybox:latest")
    client = make_client(ref.registry, ClientSettings())
    result = pull(client, ref, DiscardSink(), GeventRunner(), PullOptions())

A name is imported when it is first asked for: ``import regload`` loads nothing else (the command
line's ``--version`` and ``--help`` stay fast), and a name from the wiring (``make_client``,
``ClientSettings``) brings the network transports with it. The Locust users are in
``regload.locust``.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# name -> the module it lives in (relative to this package)
_EXPORTS = {
    "ClientSettings": ".wiring.connect",
    "Credentials": ".auth",
    "DigestMismatch": ".errors",
    "DiscardSink": ".sinks.discard",
    "DockerArchiveSink": ".sinks.docker_archive",
    "GeventRunner": ".wiring.gevent_runner",
    "OciLayoutSink": ".sinks.oci_layout",
    "PullOptions": ".flows.pull",
    "PullResult": ".flows.pull",
    "PushOptions": ".flows.push",
    "PushResult": ".flows.push",
    "Reference": ".reference",
    "Registry": ".reference",
    "RegistryClient": ".client",
    "RegistryError": ".errors",
    "RegloadError": ".errors",
    "RootfsSink": ".sinks.rootfs",
    "SequentialRunner": ".concurrency",
    "Sink": ".sinks.base",
    "SourceImage": ".sources.base",
    "TransportError": ".errors",
    "UsageError": ".errors",
    "make_client": ".wiring.connect",
    "make_sink": ".sinks",
    "open_source": ".sources",
    "parse_reference": ".reference",
    "pull": ".flows.pull",
    "push": ".flows.push",
    "synthetic_image": ".sources.synthetic",
    "synthetic_image_of": ".sources.synthetic",
}

__all__ = ("__version__", *sorted(_EXPORTS))


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'regload' has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
