"""Run ``locust -f locustfile.py`` as a user would: a subprocess bounded in time, whose output
files (``--csv``, ``--json-file``, regload's throughput files) and logs are read back here.

    result = run_locust(headless(url, tmp_path / "run", "-u", "4"), tmp_path, timeout=60)
    assert result.code == 0, result.output
    assert result.row("PULL", "image")["Failure Count"] == "0"

Every process is started in a session of its own and killed with its children (``--processes``
forks, a local registry) by :meth:`Locust.kill`, which tests call from a finalizer.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from tests.support.limits import open_files_limit

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO / "locustfile.py"
#: Test locustfiles (regload's users with extra bookkeeping).
TEST_LOCUSTFILES = REPO / "tests" / "support" / "locustfiles"
LOCUST = str(Path(sys.executable).with_name("locust"))

#: Small images, so that a run of a few seconds moves many of them on a 2-core machine.
SMALL_IMAGES = (
    "--pull-pool-size",
    "2",
    "--pull-pool-layers",
    "1",
    "--pull-pool-layer-size",
    "64KiB",
    "--push-layers",
    "2",
    "--push-layer-size",
    "32KiB-64KiB",
)
#: The smallest image of ``SMALL_IMAGES`` in bytes: one pool layer, or two pushed layers.
SMALL_IMAGE_BYTES = 64 * 1024

#: A stats name that leaked a digest, an upload session (distribution's are UUIDs) or a token.
UNTEMPLATED = re.compile(r"sha256:|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-|[0-9a-fA-F]{32}|_state=")


def headless(host: str | None, prefix: Path, *args: str, users: int = 4, run_time: str = "4s") -> list[str]:
    """Arguments of a headless run writing ``PREFIX_stats.csv``, ``PREFIX.json`` and regload's
    ``PREFIX_throughput.{csv,json}``; ``args`` (options, then user class names) come last."""
    host_args = ["--host", host] if host else []
    return [
        "--headless",
        *("-u", str(users), "-r", str(users), "-t", run_time),
        *host_args,
        *("--csv", str(prefix), "--json-file", str(prefix)),
        *SMALL_IMAGES,
        *args,
    ]


def _child_setup(max_open_files: int | None) -> Callable[[], None]:
    def setup() -> None:
        # Ctrl-C (SIGINT) must reach locust as it does a user's, also when the tests run in the
        # background: a non-interactive shell starts background jobs with SIGINT ignored, and
        # Python installs no KeyboardInterrupt handler for a signal it inherits ignored.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if max_open_files:
            open_files_limit(max_open_files)()

    return setup


class Locust:
    """One ``locust -f locustfile.py ARGS`` process; stdout and stderr go to ``NAME.stdout`` and
    ``NAME.stderr`` in ``workdir`` (its working directory too); ``max_open_files`` lowers its
    ``RLIMIT_NOFILE``."""

    def __init__(
        self,
        args: Sequence[str],
        workdir: Path,
        *,
        name: str = "locust",
        env: dict[str, str | None] | None = None,
        locustfile: Path = LOCUSTFILE,
        max_open_files: int | None = None,
    ):
        self.args = list(args)
        self.name = name
        self.workdir = workdir
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        # ``env`` adds to the environment; a None value removes the variable.
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [LOCUST, "-f", str(locustfile), *self.args],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=full_env,
                start_new_session=True,  # its own process group: kill() reaches forked children too
                preexec_fn=_child_setup(max_open_files),
            )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def output(self) -> str:
        return f"--- {self.name} stdout:\n{self.stdout}\n--- {self.name} stderr:\n{self.stderr}"

    def wait(self, timeout: float) -> int:
        """The exit code; a process still running after ``timeout`` seconds is killed and the
        test fails with its output."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"locust did not exit within {timeout:g} s\n{self.output[-6000:]}") from None

    def wait_for(self, text: str | re.Pattern[str], timeout: float) -> str:
        """Wait until ``text`` (a substring or a pattern) shows in stdout or stderr; return the
        matching line. Fails if the process exits first or after ``timeout`` seconds."""
        pattern = text if isinstance(text, re.Pattern) else re.compile(re.escape(text))
        deadline = time.monotonic() + timeout
        while True:
            for line in (self.stderr + "\n" + self.stdout).splitlines():
                if pattern.search(line):
                    return line
            if self.process.poll() is not None:
                raise AssertionError(
                    f"locust exited ({self.process.returncode}) before {pattern.pattern!r}\n{self.output}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern.pattern!r} within {timeout:g} s\n{self.output[-6000:]}")
            time.sleep(0.1)

    def wait_for_web_ui(self, port: int, timeout: float = 30) -> str:
        """Wait until the web UI accepts connections on ``port`` and return its URL. (Locust logs
        "Starting web interface at" a moment before its server binds: a request sent right after
        that line can be refused.)"""
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return f"http://127.0.0.1:{port}"
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"nothing listens on port {port}\n{self.output[-6000:]}") from None
                time.sleep(0.05)

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM, as Ctrl-C or ``docker stop`` would: locust writes its reports and quits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def open_sockets(self) -> int:
        """Sockets the locust process holds open now (its file descriptors that are sockets)."""
        count = 0
        fd_dir = Path(f"/proc/{self.process.pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                count += os.readlink(fd).startswith("socket:")
            except OSError:  # closed between listing and reading
                pass
        return count

    def kill(self) -> None:
        """SIGKILL to the whole process group (locust, its forked workers, a local registry)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)


@dataclass
class Result:
    """What a finished run left: exit code, logs, and the files under ``prefix``."""

    code: int
    stdout: str
    stderr: str
    prefix: Path

    @property
    def output(self) -> str:
        return f"--- stdout:\n{self.stdout}\n--- stderr:\n{self.stderr}"

    def _csv(self, suffix: str) -> list[dict[str, str]]:
        with open(f"{self.prefix}_{suffix}.csv", newline="") as f:
            return list(csv.DictReader(f))

    def stats(self) -> dict[tuple[str, str], dict[str, str]]:
        """``PREFIX_stats.csv`` by (type, name), without the Aggregated row."""
        return {(r["Type"], r["Name"]): r for r in self._csv("stats") if r["Name"] != "Aggregated"}

    def row(self, kind: str, name: str) -> dict[str, str]:
        rows = self.stats()
        assert (kind, name) in rows, f"no stats row {kind} {name}; rows: {sorted(rows)}\n{self.output[-4000:]}"
        return rows[(kind, name)]

    def total(self) -> dict[str, str]:
        return next(r for r in self._csv("stats") if r["Name"] == "Aggregated")

    def failures(self) -> list[dict[str, str]]:
        return self._csv("failures")

    def exceptions(self) -> list[dict[str, str]]:
        return self._csv("exceptions")

    def history(self, kind: str, name: str) -> list[dict[str, str]]:
        """Rows of ``PREFIX_stats_history.csv`` for one entry (needs ``--csv-full-history``)."""
        return [r for r in self._csv("stats_history") if (r["Type"], r["Name"]) == (kind, name)]

    def json_stats(self) -> dict[tuple[str, str], dict[str, Any]]:
        """``PREFIX.json`` (``--json-file``) by (method, name): exact totals, unlike the CSV,
        which Locust rewrites once a second and may leave a moment behind."""
        entries = json.loads(Path(f"{self.prefix}.json").read_text())
        return {(e["method"], e["name"]): e for e in entries}

    def throughput_csv(self) -> dict[str, dict[str, str]]:
        return {r["Operation"]: r for r in self._csv("throughput")}

    def throughput_json(self) -> dict[str, dict[str, Any]]:
        return {r["operation"]: r for r in json.loads(Path(f"{self.prefix}_throughput.json").read_text())}


def run_locust(
    args: Sequence[str],
    workdir: Path,
    *,
    timeout: float,
    name: str = "locust",
    env: dict[str, str | None] | None = None,
) -> Result:
    """Run locust to its end (``-t``) and return what it left; ``--csv``/``--json-file`` are
    expected at ``workdir / name``."""
    process = Locust(args, workdir, name=name, env=env)
    try:
        code = process.wait(timeout)
    finally:
        process.kill()
    return Result(code, process.stdout, process.stderr, workdir / name)


def assert_clean(result: Result) -> None:
    """Exit 0, no failed request, no exception in a user, no traceback in the logs."""
    assert result.code == 0, result.output[-6000:]
    assert result.total()["Failure Count"] == "0", result.failures()
    assert result.exceptions() == [], result.exceptions()
    assert "Traceback" not in result.stderr + result.stdout, result.output[-6000:]


def assert_secret_absent(secrets: Iterable[str], texts: Iterable[tuple[str, str]]) -> None:
    """No secret in any of the (label, text) pairs, neither raw nor URL-encoded."""
    forms = {form for secret in secrets for form in (secret, quote(secret, safe=""), quote_plus(secret))}
    for label, text in texts:
        for form in forms:
            assert form not in text, f"a secret ({form!r}) leaked into {label}"
