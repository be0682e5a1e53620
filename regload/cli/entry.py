"""Console-script entry point. gevent must patch the standard library before anything sends a
request, so that the httpx transport's sockets cooperate with concurrent layer transfers: it does
once the arguments are parsed, so that ``--version``, ``--help`` and usage errors load no network
stack (patching alone costs a good part of the start-up)."""

from __future__ import annotations

from collections.abc import Sequence

from .main import main as run


def _patch_for_gevent() -> None:
    from gevent import monkey

    monkey.patch_all()


def main(argv: Sequence[str] | None = None) -> int:
    return run(argv, before_run=_patch_for_gevent)


__all__ = ["main"]
