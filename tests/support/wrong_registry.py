"""A registry that serves wrong bytes: a real HTTP server on loopback, answering the pull side of
the Distribution API with whatever manifests and blobs a test gives it.

    with WrongRegistry() as registry:
        registry.manifest("bad/app", "v1", b"{not json", "application/vnd.oci.image.manifest.v1+json")
        run = regload("pull", f"{registry.host}/bad/app:v1")

``GET /v2/`` answers 200; manifest ``GET``/``HEAD`` and blob ``GET``/``HEAD`` answer what was set,
with ``Content-Type`` and extra headers as given (no ``Docker-Content-Digest`` unless given: old
registries send none), and 404 with a spec error body otherwise; ``route`` sets any other answer
(an error status, a tag list). Other methods (uploads) get 405 ``UNSUPPORTED``. Every request is
recorded in ``requests`` as ``(method, path)``.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Served:
    body: bytes
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    status: int = 200


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


class _QuietServer(ThreadingHTTPServer):
    """A client closing its kept-alive connection (regload drops one whose body it did not read)
    is no error: socketserver would print a traceback, which the tests look for in regload's."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class WrongRegistry:
    """The server; ``host`` is ``127.0.0.1:PORT``. Start with ``with`` or ``start()``."""

    def __init__(self) -> None:
        self.routes: dict[str, Served] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="wrong-registry", daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def manifest(
        self,
        repository: str,
        reference: str,
        body: bytes,
        content_type: str | None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Serve ``body`` at ``/v2/<repository>/manifests/<reference>``."""
        self.routes[f"/v2/{repository}/manifests/{reference}"] = Served(body, content_type, headers)

    def blob(self, repository: str, digest: str, body: bytes) -> None:
        """Serve ``body`` at ``/v2/<repository>/blobs/<digest>``, whatever its real digest."""
        self.routes[f"/v2/{repository}/blobs/{digest}"] = Served(body, "application/octet-stream")

    def route(self, path: str, served: Served) -> None:
        """Answer ``GET``/``HEAD`` of ``path`` (``/v2/…``) with ``served``, whatever its status."""
        self.routes[path] = served

    def requests_for(self, repository: str) -> list[tuple[str, str]]:
        prefix = f"/v2/{repository}/"
        with self._lock:
            return [(method, path) for method, path in self.requests if path.startswith(prefix)]

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def start(self) -> WrongRegistry:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> WrongRegistry:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _handler_for(registry: WrongRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "wrong-registry"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass  # quiet: tests look at ``requests``

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def do_POST(self) -> None:
            self._refuse()

        def do_PUT(self) -> None:
            self._refuse()

        def do_PATCH(self) -> None:
            self._refuse()

        def do_DELETE(self) -> None:
            self._refuse()

        def _answer(self, send_body: bool) -> None:
            path = urlsplit(self.path).path
            registry.record(self.command, path)
            if path == "/v2/":
                self._send(200, Served(b"{}", "application/json"), send_body)
                return
            served = registry.routes.get(path)
            if served is not None:
                self._send(served.status, served, send_body)
            elif "/blobs/" in path:
                self._send(404, Served(_error_body("BLOB_UNKNOWN", "blob unknown to registry"), "application/json"))
            else:
                self._send(404, Served(_error_body("MANIFEST_UNKNOWN", "manifest unknown"), "application/json"))

        def _refuse(self) -> None:
            registry.record(self.command, urlsplit(self.path).path)
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.close_connection = True  # a chunked upload body is left unread: do not reuse
            self._send(405, Served(_error_body("UNSUPPORTED", "this registry only serves"), "application/json"))

        def _send(self, status: int, served: Served, send_body: bool = True) -> None:
            try:
                self.send_response(status)
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                if served.content_type is not None:
                    self.send_header("Content-Type", served.content_type)
                for name, value in served.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(served.body)))
                self.end_headers()
                if send_body:
                    self.wfile.write(served.body)
            except (BrokenPipeError, ConnectionResetError):
                # The client stopped reading (a manifest past its size limit): that is its right.
                self.close_connection = True

    return Handler
