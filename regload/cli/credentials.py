"""Where the CLI finds registry credentials: flags, environment, docker's ``config.json``."""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path

from ..auth import Credentials
from ..errors import UsageError

DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


def docker_config_path() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def from_docker_config(host: str, path: Path | None = None) -> Credentials | None:
    """Credentials for ``host`` from the ``auths`` of a docker config.json (``auth`` is base64
    ``user:password``; ``username``/``password`` fields are read too). Credential helpers
    (``credsStore``/``credHelpers``) are not run."""
    path = path or docker_config_path()
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as e:
        raise UsageError(f"cannot read docker config {path}: {e.__class__.__name__}") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        return None
    keys = DOCKER_HUB_KEYS if host in ("registry-1.docker.io", "docker.io") else (host,)
    for key, entry in auths.items():
        if _host_of(key) in keys or key in keys:
            return _entry_credentials(entry, path)
    return None


def _host_of(key: str) -> str:
    # Keys may be "host:port", "https://host:port" or "https://host/v1/".
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key.split("/", 1)[0]


def _entry_credentials(entry: object, path: Path) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            user, sep, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise UsageError(f"docker config {path}: an 'auth' entry is not base64 of user:password") from None
        if not sep:
            raise UsageError(f"docker config {path}: an 'auth' entry is not base64 of user:password")
        return Credentials(user, password)
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return Credentials(entry["username"], entry["password"])
    return None


def resolve_credentials(
    host: str, username: str | None, password: str | None, password_stdin: bool, stdin_text: str | None = None
) -> Credentials | None:
    """Flags win, then ``REGLOAD_USERNAME``/``REGLOAD_PASSWORD``, then docker's config.json."""
    if password_stdin:
        if password is not None:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        password = (stdin_text or "").rstrip("\r\n")
    username = username if username is not None else os.environ.get("REGLOAD_USERNAME")
    password = password if password is not None else os.environ.get("REGLOAD_PASSWORD")
    if username is not None or password is not None:
        if not username:
            raise UsageError("a password was given without a username (-u/--username)")
        if password is None:
            raise UsageError("a username was given without a password (-p, --password-stdin or REGLOAD_PASSWORD)")
        return Credentials(username, password)
    return from_docker_config(host)
