"""htpasswd files for distribution's basic auth, which accepts bcrypt entries only."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import bcrypt

#: bcrypt's minimum cost. distribution checks the hash on *every* request (no cache), so the
#: default cost 12 would make each request cost the registry ~0.2 s of CPU.
BCRYPT_ROUNDS = 4


def write_htpasswd(path: Path, users: Mapping[str, str], *, rounds: int = BCRYPT_ROUNDS) -> Path:
    """Write ``user:bcrypt-hash`` lines. User names cannot contain ``:``; passwords may."""
    lines = []
    for user, password in users.items():
        if ":" in user or "\n" in user:
            raise ValueError(f"htpasswd user names cannot contain ':' or newlines: {user!r}")
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()
        lines.append(f"{user}:{hashed}\n")
    path.write_text("".join(lines))
    return path
