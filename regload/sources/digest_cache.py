"""What a layer compresses to, remembered between runs: diff_id + encoder → digest and size.

A docker-save layer's compressed digest is known only once it is compressed. Without it the
push cannot ask the registry (HEAD) whether the blob is there before sending it. docker
(moby ``distribution/metadata/v2_metadata_service.go``) and containers/image
(``pkg/blobinfocache``) keep the same kind of map for the same reason. With an entry, the push
asks first and skips a blob the registry holds; without one it compresses while it uploads.
regload's gzip is deterministic for one encoder build, so an entry is exact: the key names
the encoder and its version, and is written only after a complete pass that also checked the
diff_id.

The file is JSON, replaced whole by a rename (never half-written); one that cannot be read or
written is treated as empty: the cache only saves work.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from pathlib import Path

from ..digest import Digest
from ..errors import InvalidDigest

MAX_ENTRIES = 4096  # the oldest go first


class DigestCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, tuple[Digest, int]] | None = None
        self._lock = threading.Lock()  # held briefly, never across a switch

    @classmethod
    def default(cls) -> DigestCache:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return cls(Path(base) / "regload" / "gzip-digests.json")

    def get(self, key: str) -> tuple[Digest, int] | None:
        return self._load().get(key)

    def put(self, key: str, digest: Digest, size: int) -> None:
        with self._lock:
            entries = self._load()
            if entries.get(key) == (digest, size):
                return
            entries.pop(key, None)
            entries[key] = (digest, size)
            while len(entries) > MAX_ENTRIES:
                del entries[next(iter(entries))]
            doc = {k: [str(d), n] for k, (d, n) in entries.items()}
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".gzip-digests-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(doc, f)
                os.replace(tmp, self.path)
            except OSError:
                os.unlink(tmp)
                raise

    def _load(self) -> dict[str, tuple[Digest, int]]:
        if self._entries is None:
            self._entries = {}
            try:
                doc = json.loads(self.path.read_text())
            except (OSError, ValueError):
                return self._entries
            if isinstance(doc, dict):
                for key, value in doc.items():
                    with contextlib.suppress(InvalidDigest, TypeError, ValueError):
                        digest, size = value
                        if isinstance(size, int) and size >= 0:
                            self._entries[key] = (Digest.parse(digest), size)
        return self._entries
