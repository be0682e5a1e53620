"""A reverse proxy of known capacity, in front of a real registry: it serves at most ``slots``
requests at once and holds each one ``hold`` seconds before forwarding it, so it answers at most
``slots / hold`` requests per second, however hard it is pushed (a registry with K workers of
fixed service time). The capacity tests search its rate.

    with LimitProxy(registry.url, slots=3, hold=0.05) as proxy:   # ≤ 60 requests/s
        ... --host proxy.url ...
"""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class LimitProxy:
    def __init__(self, upstream: str, slots: int, hold: float) -> None:
        self.upstream = urlsplit(upstream)
        self.slots, self.hold = slots, hold
        self.limit = threading.BoundedSemaphore(slots)
        self.requests = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            upstream_connection: http.client.HTTPConnection | None = None

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                with proxy.limit:
                    time.sleep(proxy.hold)
                    status, reason, fields, data = proxy.exchange(self, self.command, self.path, body, headers)
                with proxy._lock:
                    proxy.requests += 1
                self.send_response_only(status, reason)
                for name, value in fields:
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client gone mid-answer (a run's end): nothing to report

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def exchange(
        self, handler: Any, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """One request upstream, on the client connection's own upstream connection."""
        for attempt in range(2):
            if handler.upstream_connection is None:
                handler.upstream_connection = http.client.HTTPConnection(
                    self.upstream.hostname, self.upstream.port, timeout=30
                )
            conn = handler.upstream_connection
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                return response.status, response.reason, response.getheaders(), data
            except (http.client.HTTPException, OSError):
                conn.close()
                handler.upstream_connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def capacity(self) -> float:
        """Requests per second, at most."""
        return self.slots / self.hold

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
