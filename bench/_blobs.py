"""Helpers shared by ``bench/pull_bytes.py`` and ``bench/push_bytes.py``.

Both scripts start Debian's ``docker-registry`` on loopback (``LocalRegistry``), run a baseline
(curl) and regload side by side, plus the peer tools (skopeo, podman) when they are installed,
and print each figure (best and median of N runs) and the ratios to the targets of issue 4.
Every tool runs as its own process, so each timing includes that tool's start-up; the MB/s
figures of curl and regload come from the tools' own clocks (curl's ``time_total``, regload's
``--json`` timings), which cover the transfer only.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without an install
    sys.path.insert(0, str(ROOT))

from regload.sources.synthetic import SyntheticLayer  # noqa: E402
from regload.units import parse_size  # noqa: E402

MB = 1_000_000  # throughput is in MB/s (10^6), as curl and most tools print it
MiB = 1 << 20
SHORT_SIZE = "64MiB"


def regload_cmd() -> list[str]:
    """regload of this checkout, run by the interpreter running the bench."""
    return [sys.executable, "-m", "regload"]


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    # An installed regload has its bytecode; with this set, a checkout's modules would be
    # compiled again at every start (about 0.3 s of each command here), timed as regload's.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


class CommandFailed(RuntimeError):
    pass


def run(cmd: Sequence[str], timeout: float, stderr: bool = False) -> tuple[float, str]:
    """Run ``cmd``; return (wall seconds, stdout, plus stderr when asked). Raises
    ``CommandFailed`` on a non-zero exit."""
    started = time.perf_counter()
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, env=bench_env())
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise CommandFailed(f"{' '.join(cmd[:3])}… exited {proc.returncode}: {' | '.join(tail)}")
    return wall, proc.stdout + (proc.stderr if stderr else "")


def regload_json(cmd: Sequence[str], timeout: float) -> tuple[float, dict]:
    wall, out = run([*regload_cmd(), *cmd, "--json"], timeout)
    return wall, json.loads(out)


@dataclass
class Figure:
    """Repeated measurements of one leg: seconds per run (the transfer, or the whole command)."""

    name: str
    seconds: list[float] = field(default_factory=list)
    skipped: str | None = None

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def ok(self) -> bool:
        return self.skipped is None and bool(self.seconds)


def repeat(name: str, times: int, once: Callable[[int], float]) -> Figure:
    """Call ``once(i)`` ``times`` times; a failing leg is reported as skipped, not fatal."""
    fig = Figure(name)
    for i in range(times):
        try:
            fig.seconds.append(once(i))
        except (CommandFailed, subprocess.TimeoutExpired, OSError, RuntimeError, ValueError) as exc:
            fig.skipped = str(exc)
            break
    return fig


def interleave(legs: Sequence[tuple[str, Callable[[int], float]]], times: int) -> list[Figure]:
    """Like ``repeat`` for several legs, taking turns (run 1 of each, then run 2 …), so that a
    change in the machine's load during the bench weighs on every leg alike."""
    figs = [Figure(name) for name, _ in legs]
    for i in range(times):
        for fig, (_, once) in zip(figs, legs, strict=True):
            if fig.skipped is not None:
                continue
            try:
                fig.seconds.append(once(i))
            except (CommandFailed, subprocess.TimeoutExpired, OSError, RuntimeError, ValueError) as exc:
                fig.skipped = str(exc)
    return figs


def load_note() -> str:
    """The load average: the figures mean little on a machine busy with something else."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def tool(name: str) -> str | None:
    return shutil.which(name)


def mbps(size: int, seconds: float) -> float:
    return size / seconds / MB


def print_figure(fig: Figure, size: int | None) -> None:
    """One line: best and median time, and MB/s over ``size`` when given."""
    if not fig.ok:
        print(f"  {fig.name:<52} skipped: {fig.skipped or 'no runs'}")
        return
    text = f"  {fig.name:<52} best {fig.best:7.3f} s  median {fig.median:7.3f} s"
    if size:
        text += f"  ({mbps(size, fig.best):7.1f} MB/s best, {mbps(size, fig.median):7.1f} median)"
    print(text + f"  [n={len(fig.seconds)}]")


def print_ratio(label: str, ours: Figure, theirs: Figure, target: str) -> None:
    """Their time / our time: regload's throughput over theirs (> 1: regload is faster)."""
    if not (ours.ok and theirs.ok):
        why = theirs.skipped or ours.skipped or "no runs"
        print(f"  {label:<52} n/a ({why.splitlines()[0][:80]})")
        return
    best = theirs.best / ours.best
    median = theirs.median / ours.median
    print(f"  {label:<52} {best:6.2f}x best, {median:6.2f}x median   (target {target})")


def write_synthetic_layer(path: Path, size: int, seed: int = 0) -> SyntheticLayer:
    """Write the exact bytes of regload's synthetic layer 1 (``synthetic:layers=1,size=…,seed=…``)
    to ``path``, so baselines send or compare the very same blob."""
    layer = SyntheticLayer(seed, 1, size)
    with open(path, "wb") as out:
        for chunk in layer.open():
            out.write(chunk)
    return layer


def parse_common(argv: Sequence[str] | None, description: str) -> tuple[int, int, bool]:
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--size", default="1GiB", help="layer size (default 1GiB)")
    p.add_argument("--short", action="store_true", help=f"quick run: {SHORT_SIZE} layer, one run per leg")
    p.add_argument("--repeat", type=int, default=3, help="runs per leg (default 3; --short: 1)")
    args = p.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows in a log
    size = parse_size(SHORT_SIZE if args.short else args.size)
    times = 1 if args.short else max(1, args.repeat)
    return size, times, args.short
