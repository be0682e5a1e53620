"""Console-script entry point. Only the httpx transport (``--http2``) needs the standard library
patched for gevent, so that its sockets cooperate with concurrent layer transfers: the default
transport is written on gevent's own sockets, and the client's pauses and the compression
threads are gevent's too (``wiring``). Patching costs a good part of the start-up (each patch
asks every installed package for gevent plugins), so it is done for ``--http2`` only, once the
arguments are parsed: ``--version``, ``--help`` and usage errors load no network stack."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__


def _patch_for_gevent(args: argparse.Namespace) -> None:
    if getattr(args, "registry_http_2", False):  # --registry-http2
        from gevent import monkey

        monkey.patch_all()


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args == ["--version"]:
        # What the parser's version action prints, without importing the commands (~70 ms).
        print(f"regload {__version__}")
        return 0
    from .main import main as run

    return run(argv, before_run=_patch_for_gevent)


__all__ = ["main"]
