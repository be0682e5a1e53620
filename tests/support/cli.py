"""Run the real ``regload`` command (a subprocess, as a user would) against a test registry."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from tests.support.limits import open_files_limit
from tests.support.registries import RegistryFixture


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def connection_args(registry: RegistryFixture) -> list[str]:
    """Flags that reach ``registry``: a base URL for TLS and prefixed registries (loopback
    hosts default to plain HTTP), credentials through stdin."""
    args = []
    if registry.tls or registry.prefix:
        args += ["--registry", registry.url]
    if registry.ca_cert:
        args += ["--registry-ca-cert", str(registry.ca_cert)]
    if registry.username:
        args += ["-u", registry.username, "--password-stdin"]
    return args


def image_ref(registry: RegistryFixture, repository: str, tag: str = "latest") -> str:
    """REFERENCE for ``repository:tag`` in ``registry`` given ``connection_args``."""
    name = f"{repository}:{tag}" if not tag.startswith("sha256:") else f"{repository}@{tag}"
    return name if (registry.tls or registry.prefix) else f"{registry.host}/{name}"


_CACHE_HOME = tempfile.mkdtemp(prefix="regload-test-cache-")  # the push's digest cache, this session's own
atexit.register(shutil.rmtree, _CACHE_HOME, True)


def regload(
    *args: str,
    registry: RegistryFixture | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: str | os.PathLike[str] | None = None,
    max_open_files: int | None = None,
) -> Run:
    """``python -m regload ARGS`` with the registry's connection flags appended;
    ``max_open_files`` lowers the child's ``RLIMIT_NOFILE``."""
    cmd = [sys.executable, "-m", "regload", *args]
    if registry is not None:
        cmd += connection_args(registry)
        if registry.username and stdin is None:
            stdin = registry.password
    defaults = {"DOCKER_CONFIG": "/nonexistent-regload-test", "XDG_CACHE_HOME": _CACHE_HOME}
    full_env = {**os.environ, **defaults, **(env or {})}
    done = subprocess.run(
        cmd,
        input=stdin or "",
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
        preexec_fn=open_files_limit(max_open_files) if max_open_files else None,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def assert_clean_failure(run: Run, code: int, *needles: str) -> None:
    """A user-facing failure: the expected exit code, one line on stderr naming the cause."""
    assert run.code == code, run.output
    assert "Traceback" not in run.output, run.output
    lines = [line for line in run.stderr.splitlines() if line.startswith("regload: error:")]
    assert len(lines) == 1, run.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
