"""bench/push_gzip.py runs in its --short mode against the real docker-registry and prints its
figures and ratios (timings are not asserted: CI machines vary)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

REPO = Path(__file__).resolve().parents[1]
NUMBER = r"[0-9]+(?:\.[0-9]+)?"


def test_push_gzip_short() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "push_gzip.py"), "--short"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = result.stdout
    assert result.returncode == 0, (out + result.stderr)[-4000:]
    assert "unique images of 2 layer(s) of 262144 bytes" in out
    for label in ("noise layers (uncompressed", "gzip layers, ratio 2.6", "naive: zlib 6 per push"):
        pattern = rf"{re.escape(label)}.*\s{NUMBER} pushes/s\s+{NUMBER} MB/s\s+client\s+{NUMBER} ms CPU/push"
        assert re.search(
            pattern + rf"\s+registry\s+{NUMBER} ms CPU/push.*\(warm-up {NUMBER} s, [1-9]\d* pushes\)", out
        ), out
    for label in ("noise bytes generated alone", "gzip layers made alone", "naive compression", "sha256 alone"):
        assert re.search(rf"{label}.*\s{NUMBER} images/s", out), out
    for label in ("gzip / noise pushes/s", "gzip / naive pushes/s", "client CPU per push, naive / gzip"):
        assert re.search(rf"{re.escape(label)}\s+{NUMBER}x", out), out
