"""bench/pull_bytes.py and bench/push_bytes.py run in their --short mode (64 MiB, one run per
leg) against the real docker-registry and print their figures and ratios.

Timings and ratios are not asserted (CI machines vary). Peer tools that are missing (skopeo,
podman) make their leg print "skipped: …", and the script still succeeds.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

REPO = Path(__file__).resolve().parents[1]
FIGURE = r"best +[0-9.]+ s +median +[0-9.]+ s +\( *[0-9.]+ MB/s best"
RATIO = r"[0-9.]+x best, +[0-9.]+x median"


def run_bench(script: str) -> str:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--short"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout


def line(out: str, label: str) -> str:
    found = [text for text in out.splitlines() if text.strip().startswith(label)]
    assert found, f"no line starting with {label!r} in:\n{out}"
    return found[0]


def test_pull_bytes_short() -> None:
    out = run_bench("pull_bytes.py")
    assert "one layer of 67108864 bytes" in out
    labels = (
        "curl -o /dev/null",
        "sha256 of as many bytes",
        "regload pull (layer, verified)",
        "regload pull --no-verify",
    )
    for label in (*labels, "regload pull (whole image, wall)"):
        assert re.search(FIGURE, line(out, label)), out
    for label in ("skopeo copy", "podman pull"):
        assert re.search(FIGURE, line(out, label)) or "skipped: " in line(out, label), out
    assert re.search(RATIO, line(out, "regload pull / curl")), out
    assert re.search(RATIO, line(out, "regload pull / min(curl, sha256)")), out
    assert re.search(RATIO, line(out, "regload pull --no-verify / curl")), out
    line(out, "regload pull vs skopeo")
    line(out, "regload pull vs podman")


def test_push_bytes_short() -> None:
    out = run_bench("push_bytes.py")
    assert "one layer of 67108864 bytes" in out
    for label in (
        "curl POST + PUT",
        "regload push streamed --no-check-existing",
        "regload push streamed (HEAD, pre-pass)",
        "regload push oci:layout",
    ):
        assert re.search(FIGURE, line(out, label)), out
    skopeo = line(out, "skopeo copy")
    assert re.search(FIGURE, skopeo) or "skipped: " in skopeo, out
    assert re.search(RATIO, line(out, "regload streamed, no HEAD / curl")), out
    line(out, "regload streamed, no HEAD vs skopeo")


def test_real_image_short() -> None:
    """A docker save tarball (a small tree with --short) pushed and pulled by regload and
    skopeo, each run against a registry of its own."""
    out = run_bench("real_image.py")
    whole = r"best +[0-9.]+ s +median +[0-9.]+ s +\[n=1\]"
    for label in (
        "regload push docker-archive: (ISA-L)",
        "regload push --compression-level 6",
        "regload pull --format oci",
    ):
        assert re.search(whole, line(out, label)), out
    for label in ("skopeo copy docker-archive:", "skopeo copy docker:// oci:"):
        assert re.search(whole, line(out, label)) or "skipped: " in line(out, label), out
    assert re.search(r"ISA-L level 2 \(regload's default\) +[0-9]+ MB/s +ratio +[0-9.]+", out), out
    line(out, "regload push vs skopeo copy docker-archive:")
    line(out, "regload pull --format oci vs skopeo copy oci:")
