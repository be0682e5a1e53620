"""podman as a peer client: pulls and pushes with a storage of its own, no credentials from the
machine, plain HTTP to the test registries."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = "install it with `apt-get install podman`"


class Podman:
    """``podman`` with ``--root`` under ``workdir`` (the vfs driver: no overlay mounts needed), a
    ``--runroot`` of its own (podman wants it shorter than 50 characters: under /tmp, removed
    by ``close``) and an empty auth file."""

    def __init__(self, workdir: Path) -> None:
        found = shutil.which("podman")
        if found is None:
            raise RuntimeError(f"`podman` is not on $PATH: {INSTALL_HINT}")
        workdir.mkdir(parents=True, exist_ok=True)
        auth = workdir / "auth.json"
        auth.write_text("{}")
        self.runroot = tempfile.mkdtemp(prefix="regload-podman-")
        self.command = [
            found,
            "--root",
            str(workdir / "storage"),
            "--runroot",
            self.runroot,
            "--storage-driver",
            "vfs",
        ]
        self.env = {**os.environ, "REGISTRY_AUTH_FILE": str(auth)}

    def __call__(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run([*self.command, *args], capture_output=True, text=True, timeout=timeout, env=self.env)
        if done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} exited {done.returncode}:\n{done.stderr.strip()}")
        return done.stdout

    def pull(self, ref: str) -> None:
        self("pull", "--tls-verify=false", ref)

    def push(self, source: str, destination: str) -> None:
        self("push", "--tls-verify=false", source, destination)

    def close(self) -> None:
        shutil.rmtree(self.runroot, ignore_errors=True)
