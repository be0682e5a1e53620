"""Peak RSS that ``regload push`` (streamed, synthetic) and ``regload pull`` (no output, digests
verified) add for an image with one large layer, against docker-registry on loopback.

    /work/venv/bin/python bench/memory.py                 # a 1 GiB layer
    /work/venv/bin/python bench/memory.py --short         # a 64 MiB layer (CI)
    /work/venv/bin/python bench/memory.py --size 4GiB

Each command runs as a child process whose peak RSS (``ru_maxrss`` from ``wait4``) is read when it
exits. The baseline is the same command on a tiny image (same code loaded, same connections):
what the large layer adds is the difference. ``regload --version`` (interpreter start) is shown
too. Target (issue 4): ≤ 64 MiB added.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REGLOAD, header, verdict  # noqa: E402

TARGET_MIB = 64.0


def peak_rss(args: list[str], timeout: float) -> tuple[float, float]:
    """Run ``args``; return (peak RSS in MiB, seconds). Raises when it fails."""
    started = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"{' '.join(args[:3])} timed out after {timeout:g}s")
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise RuntimeError(f"{' '.join(args[:3])} exited {proc.returncode}: {err[-1500:]}")
    return usage.ru_maxrss / 1024, elapsed


def main() -> int:
    from regload.units import parse_size

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="a 64 MiB layer (CI smoke run)")
    parser.add_argument("--size", help="layer size (default 1GiB, --short 64MiB)")
    args = parser.parse_args()
    size_text = args.size or ("64MiB" if args.short else "1GiB")
    size = parse_size(size_text)
    timeout = 120 + size / (4 << 20)  # at least 4 MiB/s on a busy machine

    from regload.local_registry import LocalRegistry

    with LocalRegistry() as registry:
        registry.start()
        net = ["--registry", registry.url]
        tiny, big = "bench/mem:tiny", "bench/mem:big"
        header(f"peak RSS of regload (docker-registry at {registry.url}, layer {size_text})")
        rows: list[tuple[str, float, float]] = []

        def measure(label: str, argv: list[str], t: float = timeout) -> float:
            rss, secs = peak_rss([REGLOAD, *argv], t)
            rows.append((label, rss, secs))
            print(f"{label:<44} {rss:7.1f} MiB peak RSS  ({secs:.1f} s)", flush=True)
            return rss

        start = measure("regload --version (interpreter start)", ["--version"], 60)
        push_tiny = measure(
            "regload push, 4 KiB layer (baseline)", ["push", "synthetic:layers=1,size=4KiB,seed=1", tiny, *net], 60
        )
        push_big = measure(
            f"regload push --upload-mode streamed, {size_text}",
            ["push", f"synthetic:layers=1,size={size},seed=2", big, "--upload-mode", "streamed", *net],
        )
        pull_tiny = measure("regload pull, 4 KiB layer (baseline)", ["pull", tiny, *net], 60)
        pull_big = measure(f"regload pull (no output), {size_text}", ["pull", big, *net])
        storage = sum(f.stat().st_size for f in registry.storage_dir.rglob("*") if f.is_file())
    header("added by the large layer (target ≤ 64 MiB)")
    push_added, pull_added = push_big - push_tiny, pull_big - pull_tiny
    for label, added, secs, other in (
        ("push", push_added, rows[2][2], push_big - start),
        ("pull", pull_added, rows[4][2], pull_big - start),
    ):
        rate = size / secs / (1 << 20)
        print(
            f"{label}: {added:6.1f} MiB over the tiny image ({other:.1f} MiB over interpreter start), "
            f"{rate:.0f} MiB/s: {verdict(added, TARGET_MIB, higher_is_better=False)}"
        )
    print(f"(registry storage used: {storage / (1 << 20):.0f} MiB, removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
