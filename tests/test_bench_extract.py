"""bench/extract.py runs in its --short mode (scale 1, one run per leg) and prints every leg and
ratio. Timings are not asserted (CI machines vary)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

REPO = Path(__file__).resolve().parents[1]
FIGURE = r"best +[0-9.]+ s +median +[0-9.]+ s +\( *[0-9]+ entries/s best"
RATIO = r"[0-9.]+x best, +[0-9.]+x median"


def line(out: str, label: str) -> str:
    found = [text for text in out.splitlines() if text.strip().startswith(label)]
    assert found, f"no line starting with {label!r} in:\n{out}"
    return found[0]


def test_extract_short() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "extract.py"), "--short"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = result.stdout
    assert result.returncode == 0, (out + result.stderr)[-4000:]
    assert re.search(r"3 layers, [0-9]{5} tar entries", out), out
    for label in (
        "GNU tar -x",
        "tarfile, read every member",
        "umoci raw unpack",
        "umoci unpack",
        "regload extraction",
        "regload pull --output",
    ):
        assert re.search(FIGURE, line(out, label)), out
    for label in ("regload extraction vs umoci raw unpack", "regload extraction vs umoci unpack"):
        assert re.search(RATIO, line(out, label)), out
    assert not list(Path("/dev/shm").glob("regload-bench-extract-*")), "the bench left its trees behind"
