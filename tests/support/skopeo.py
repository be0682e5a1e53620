"""skopeo as the interop peer: copy images into and out of the test registries.

Flags come from the :class:`RegistryFixture` that a ``docker://`` reference points into:
``--{side}-creds`` when it has a user, ``--{side}-tls-verify=false`` for plain HTTP and
``--{side}-cert-dir`` (a dir with ``ca.crt``) for TLS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from tests.support.registries import RegistryFixture

INSTALL_HINT = "install it with `apt-get install skopeo umoci`"


class ToolError(RuntimeError):
    """skopeo (or umoci) failed; the message carries its stderr."""


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ToolError(f"`{name}` is not on $PATH: {INSTALL_HINT}")
    return found


def run_skopeo(*args: str, timeout: float = 60) -> bytes:
    """Run skopeo and return its stdout; raise :class:`ToolError` with its stderr on failure."""
    cmd = [_tool("skopeo"), *args]
    # An auth file on the machine (~/.docker/config.json, $XDG_RUNTIME_DIR/containers/auth.json)
    # must not add credentials to anonymous tests: point skopeo at one that does not exist.
    env = {**os.environ, "REGISTRY_AUTH_FILE": "/nonexistent/regload-tests-auth.json"}
    result = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env)
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        raise ToolError(f"{' '.join(cmd)} exited {result.returncode}:\n{stderr}")
    return result.stdout


def registry_flags(registry: RegistryFixture, side: str = "") -> list[str]:
    """skopeo flags for one side (``"src"``, ``"dest"``, or ``""`` for inspect)."""
    dash = f"--{side}-" if side else "--"
    flags = []
    if registry.username is not None:
        flags.append(f"{dash}creds={registry.username}:{registry.password}")
    if registry.ca_dir is not None:
        flags.append(f"{dash}cert-dir={registry.ca_dir}")
    else:
        flags.append(f"{dash}tls-verify=false")
    return flags


def _points_into(ref: str, registry: RegistryFixture | None) -> bool:
    return registry is not None and ref.startswith(f"docker://{registry.skopeo_host}/")


def skopeo_copy(
    src: str,
    dst: str,
    *,
    registry: RegistryFixture | None = None,
    src_registry: RegistryFixture | None = None,
    dest_registry: RegistryFixture | None = None,
    extra: Sequence[str] = (),
    timeout: float = 60,
) -> None:
    """``skopeo copy src dst``; ``registry`` applies to whichever side points into it."""
    flags = ["--insecure-policy"]  # /etc/containers/policy.json may be missing or strict
    src_registry = src_registry or (registry if _points_into(src, registry) else None)
    dest_registry = dest_registry or (registry if _points_into(dst, registry) else None)
    if src_registry is not None:
        flags += registry_flags(src_registry, "src")
    if dest_registry is not None:
        flags += registry_flags(dest_registry, "dest")
    run_skopeo("copy", *flags, *extra, src, dst, timeout=timeout)


def skopeo_inspect(ref: str, *, registry: RegistryFixture | None = None, config: bool = False) -> Any:
    """``skopeo inspect`` parsed from JSON (``config``: the image config instead)."""
    flags = registry_flags(registry) if registry is not None else []
    if config:
        flags.append("--config")
    return json.loads(run_skopeo("inspect", *flags, ref))


def skopeo_manifest(ref: str, *, registry: RegistryFixture | None = None) -> bytes:
    """The manifest bytes exactly as served (``skopeo inspect --raw``), for digest checks."""
    flags = registry_flags(registry) if registry is not None else []
    return run_skopeo("inspect", "--raw", *flags, ref)
