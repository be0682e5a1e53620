"""The lifecycle of a throwaway CNCF distribution registry (Debian's ``docker-registry``) on loopback.

Used by the test suite and, when the user gives no ``--host``, by the Locust front end::

    with LocalRegistry(auth=Htpasswd("/tmp/htpasswd")) as registry:
        print(registry.url)          # http://127.0.0.1:41234
        registry.restart()           # same port, same storage

The registry listens on a free ``127.0.0.1`` port, stores blobs in a temporary directory
(filesystem driver) and logs to ``registry.log`` beside its generated ``config.yml``. Every
process started here is killed on :meth:`LocalRegistry.stop`, when the object is garbage
collected, and at interpreter exit.

This module needs only the standard library: it must stay importable without gevent, locust
or httpx.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Self

from ..errors import RegloadError
from ..fds import remove_tree
from .config import Htpasswd, RegistryConfig, Token

__all__ = ["LocalRegistry", "RegistryBinaryNotFound", "RegistryStartError", "find_registry_binary", "free_port"]

#: Names the binary goes by: Debian's package, and upstream's release tarballs.
BINARY_NAMES = ("docker-registry", "registry")
INSTALL_HINT = (
    "install CNCF distribution, e.g. `apt-get install docker-registry` on Debian/Ubuntu, "
    "or point $REGLOAD_REGISTRY_BINARY at a `registry` binary"
)


class RegistryBinaryNotFound(RegloadError):
    """The ``docker-registry`` binary is not installed."""


class RegistryStartError(RegloadError):
    """The registry process exited or did not answer ``GET /v2/`` in time."""


def find_registry_binary() -> str:
    """Return the path of the distribution registry binary, or raise with how to install it.

    ``$REGLOAD_REGISTRY_BINARY`` wins over ``$PATH``.
    """
    override = os.environ.get("REGLOAD_REGISTRY_BINARY")
    if override:
        if os.access(override, os.X_OK):
            return override
        raise RegistryBinaryNotFound(f"$REGLOAD_REGISTRY_BINARY={override} is not executable; {INSTALL_HINT}")
    for name in BINARY_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise RegistryBinaryNotFound(f"the registry binary `docker-registry` was not found on $PATH: {INSTALL_HINT}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the registry binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalRegistry:
    """One ``docker-registry`` process on ``127.0.0.1``, started by :meth:`start`.

    Attributes once started: ``url`` (base URL, with the prefix, without trailing slash; the API
    is at ``url + "/v2/"``), ``origin`` (scheme, host and port only), ``host`` (``127.0.0.1:PORT``),
    ``port``, ``storage_dir``, ``config_path``, ``log_path``.
    """

    def __init__(
        self,
        *,
        auth: Htpasswd | Token | None = None,
        tls: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
        prefix: str | None = None,
        delete_enabled: bool = True,
        access_log: bool = False,
        config: RegistryConfig | None = None,
        port: int | None = None,
        storage_dir: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        start_timeout: float = 20.0,
        keep_files: bool = False,
        die_with_parent: bool = True,
    ) -> None:
        """Options either one by one or as a whole ``config`` (then the others must be left out).

        ``port=None`` picks a free port; ``storage_dir=None`` uses a temporary directory (removed
        by :meth:`stop` unless ``keep_files``). Pass an existing ``storage_dir`` to run a second
        registry over the same content (two processes may share filesystem storage).
        ``die_with_parent`` has the kernel kill the registry if this process is killed outright.
        """
        if config is None:
            config = RegistryConfig(
                auth=auth,
                tls=tls,
                prefix=prefix,
                delete_enabled=delete_enabled,
                access_log=access_log,
            )
        elif (auth, tls, prefix, delete_enabled, access_log) != (None, None, None, True, False):
            raise ValueError("give either config= or individual options, not both")
        self.config = config
        self.binary = binary
        self.start_timeout = start_timeout
        self.keep_files = keep_files
        self.die_with_parent = die_with_parent
        self._wanted_port = port
        # Resolved now: the registry runs with its work directory as cwd.
        self._wanted_storage = Path(storage_dir).resolve() if storage_dir is not None else None
        self._secret = secrets.token_hex(16)
        self._run = _Running()
        self.port: int = 0
        self.metrics_port: int = 0  # with config.metrics: the debug listener's
        self.storage_dir: Path = Path()
        # Kills the process and removes the files if the object is dropped without stop().
        self._finalizer = weakref.finalize(self, self._run.cleanup, keep_files)

    # -- addresses ---------------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self.config.tls is not None else "http"

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def url(self) -> str:
        """Base URL, prefix included, no trailing slash: the API lives at ``url + '/v2/'``."""
        return self.origin + (self.config.prefix or "/").rstrip("/")

    @property
    def metrics_url(self) -> str | None:
        """The Prometheus metrics (``config.metrics``), or None."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics" if self.config.metrics else None

    @property
    def prefix(self) -> str | None:
        return self.config.prefix

    @property
    def workdir(self) -> Path:
        if self._run.workdir is None:
            raise RuntimeError("registry not started")
        return self._run.workdir

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "registry.log"

    @property
    def pid(self) -> int | None:
        return self._run.process.pid if self._run.process is not None else None

    def is_running(self) -> bool:
        return self._run.process is not None and self._run.process.poll() is None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Write the config, start the process and wait until ``GET /v2/`` answers 200 or 401."""
        if self.is_running():
            return self
        binary = self.binary or find_registry_binary()
        if self._run.workdir is None:
            self._run.workdir = Path(tempfile.mkdtemp(prefix="regload-registry-"))
            self.storage_dir = self._wanted_storage or self._run.workdir / "storage"
            self.storage_dir.mkdir(parents=True, exist_ok=True)
        # A picked port can be taken by someone else before the registry binds it: pick again.
        attempts = 1 if self._wanted_port or self.port else 3
        for attempt in range(attempts):
            if not self.port:
                self.port = self._wanted_port or free_port()
            if self.config.metrics and not self.metrics_port:
                self.metrics_port = free_port()
            try:
                self._spawn(binary)
                return self
            except RegistryStartError:
                if attempt + 1 == attempts or "address already in use" not in self.log_tail():
                    raise
                self.port = 0
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Kill the process and remove the temporary directory (unless ``keep_files``)."""
        self._run.cleanup(self.keep_files)
        self.port = 0

    def restart(self) -> Self:
        """Stop the process only, and start it again on the same port with the same storage."""
        self._run.kill()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the registry's log (stdout and stderr), for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, RuntimeError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<LocalRegistry {self.url if self.port else '-'} {state}>"

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self, binary: str) -> None:
        self.config_path.write_text(
            self.config.to_yaml(
                addr=self.host,
                storage_dir=self.storage_dir,
                secret=self._secret,
                metrics_addr=f"127.0.0.1:{self.metrics_port}" if self.config.metrics else None,
            )
        )
        # distribution overrides any config key from REGISTRY_<SECTION>_<KEY> variables: an
        # inherited REGISTRY_HTTP_ADDR or REGISTRY_AUTH would silently change the registry.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with open(self.log_path, "ab") as log:
            log.write(f"--- regload: starting {binary} on {self.host}\n".encode())
            log.flush()
            process = self._run.process = subprocess.Popen(
                [*self._death_signal_wrapper(), binary, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                # Not in the caller's process group: a terminal's Ctrl-C (SIGINT to the whole
                # foreground group) must not stop the registry before the load test has
                # stopped its users; stop() does, and the death signal covers a crash.
                process_group=0,
            )
        _LIVE.add(process)
        self._wait_ready(process)

    def _death_signal_wrapper(self) -> list[str]:
        """``setpriv --pdeathsig KILL --``: the kernel kills the registry if its parent dies
        without cleaning up (SIGKILL, crash), where atexit never runs. setpriv (util-linux)
        execs the registry, so the pid stays the same. Linux ties the signal to the *thread*
        that started the child: start registries from a thread that outlives them."""
        if not self.die_with_parent:
            return []
        setpriv = shutil.which("setpriv")
        return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = "no answer yet"
        while True:
            code = process.poll()
            if code is not None:
                self._run.kill()
                raise RegistryStartError(
                    f"docker-registry exited with status {code} on startup; log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                status = _probe(self.host, self.url, tls=self.config.tls is not None)
                if status in (200, 401):
                    return
                last = f"GET /v2/ answered {status}"
            except OSError as exc:
                last = f"GET /v2/ failed: {exc}"
            if time.monotonic() > deadline:
                self._run.kill()
                raise RegistryStartError(
                    f"docker-registry did not answer GET {self.url}/v2/ "
                    f"within {self.start_timeout:g} s ({last}); "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)


def _probe(host: str, url: str, *, tls: bool, timeout: float = 2.0) -> int:
    """Status of ``GET /v2/``. http.client directly: urllib would obey $http_proxy."""
    hostname, port = host.rsplit(":", 1)
    conn: http.client.HTTPConnection
    if tls:
        # Only liveness is checked here; certificate checks belong to the clients under test.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(hostname, int(port), timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(hostname, int(port), timeout=timeout)
    path = url.split(host, 1)[1] + "/v2/"
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status
    finally:
        conn.close()


def _terminate(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; always reaps the child."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


class _Running:
    """The process and files of one registry; shared with its finalizer (which must not hold
    the LocalRegistry itself, or it would never be collected)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.workdir: Path | None = None

    def kill(self) -> None:
        if self.process is not None:
            _terminate(self.process)
            _LIVE.discard(self.process)
            self.process = None

    def cleanup(self, keep_files: bool) -> None:
        self.kill()
        if self.workdir is not None and not keep_files:
            with contextlib.suppress(OSError):
                remove_tree(self.workdir)  # not shutil.rmtree: see regload.fds
        self.workdir = None


#: Every process started and not yet stopped; killed at interpreter exit.
_LIVE: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_all() -> None:
    for process in list(_LIVE):
        _terminate(process, timeout=2.0)
    _LIVE.clear()
