"""Transports: ``regload.http.Transport`` on gevent sockets and httptools (the default, HTTP/1.1),
httpx (HTTP/2, proxies) and in memory (unit tests)."""

from __future__ import annotations

from regload.http import Transport, TransportOptions


def make_transport(options: TransportOptions | None = None, http2: bool = False) -> Transport:
    """The socket transport, or the httpx one when HTTP/2 is wanted.

    Imports are deferred: a process only loads the HTTP library it uses.
    """
    options = options or TransportOptions()
    if http2:
        from regload.transports.httpx_transport import HttpxTransport

        return HttpxTransport(options, http2=True)
    from regload.transports.socket_transport import SocketTransport

    return SocketTransport(options)
