#!/usr/bin/env python3
"""Extraction: a distribution-sized image unpacked by regload beside umoci and GNU tar.

    python bench/extract.py [--scale 1] [--repeat 3] [--dir /dev/shm] [--short]

Generates the test suite's big image (``tests/support/bigtree.py``: at scale 1, three layers,
~30,000 tar entries, a final tree of ~23,000 entries and ~5,600 directories, ~170 MB), then
measures, best and median of N runs, each leg a whole process writing a fresh directory:

- GNU tar -x --recursive-unlink of each layer in turn: the floor (C, gzip in a second process,
  whiteouts written as plain files instead of applied);
- Python's tarfile reading every member of every layer, writing nothing: the floor of parsing
  and decompressing in Python, below which no Python extractor goes;
- umoci raw unpack (the rootfs only) and umoci unpack (what users run: also the runtime config
  and an mtree manifest of the tree);
- regload extraction: ``RootfsSink.finish`` over the layout's blobs, the code of ``regload pull
  --output`` after the download (diff_ids verified, staging, one rename), under gevent's
  monkey patching as in the CLI;
- regload pull --output from docker-registry on loopback: download, verification and
  extraction, the whole command.

Printed: seconds and tar entries per second, and the ratios. Target (issue 9): regload's
extraction no slower than umoci. ``--dir`` is where the trees are written (default /dev/shm,
a tmpfs, so that the tools and not the disk are measured; give a disk directory to see the
disk). Legs whose tool is missing are printed as "skipped: reason".
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _blobs import Figure, interleave, load_note, print_ratio, regload_cmd, run, tool  # noqa: E402

from regload.fds import remove_tree  # noqa: E402
from regload.local_registry import LocalRegistry  # noqa: E402
from tests.support.bigtree import make_big_image  # noqa: E402
from tests.support.images import OciImage, blob_path  # noqa: E402

# Run by a child interpreter: the CLI's patching, then the sink's extraction of the layout.
REGLOAD_EXTRACT = """
from gevent import monkey
monkey.patch_all()
import json, sys
from pathlib import Path
from regload.blobstore import BlobStore
from regload.manifest import parse_manifest
from regload.sinks.base import PulledImage
from regload.sinks.rootfs import RootfsSink
layout, manifest_hex, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
blobs = BlobStore(layout / "blobs")
raw = (layout / "blobs" / "sha256" / manifest_hex).read_bytes()
manifest = parse_manifest(raw, "application/vnd.oci.image.manifest.v1+json")
config = blobs.path(manifest.config.digest).read_bytes()
image = PulledImage("bench/big", "big", manifest, None, config, manifest.config, manifest.layers, blobs)
sink = RootfsSink(out)
sink.finish(image)
print(json.dumps(sink.notes))
"""

# Reading every member with tarfile, as an extractor must, and writing nothing.
TARFILE_READ = """
import sys, tarfile
entries = 0
for blob in sys.argv[1:]:
    with tarfile.open(blob, "r|gz", bufsize=1 << 16) as tar:
        for member in tar:
            entries += 1
            if member.isreg():
                f = tar.extractfile(member)
                while f.read(1 << 20):
                    pass
print(entries)
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--scale", type=int, default=1, help="size of the generated tree (1: ~23,000 entries)")
    p.add_argument("--repeat", type=int, default=3, help="runs per leg (default 3; --short: 1)")
    p.add_argument("--dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None, help="where trees go")
    p.add_argument("--short", action="store_true", help="one run per leg, scale 1")
    args = p.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    times = 1 if args.short else max(1, args.repeat)
    scale = 1 if args.short else args.scale
    timeout = 600 * scale
    work = Path(tempfile.mkdtemp(prefix="regload-bench-extract-", dir=args.dir))
    try:
        image = make_big_image(work / "layout", scale=scale)
        blobs = [str(blob_path(image.layout, d.digest)) for d in image.layers]
        entries = count_entries(blobs)
        print(f"extraction: the generated image at scale {scale}: {len(blobs)} layers, {entries} tar entries,")
        print(f"  {sum(d.size for d in image.layers) / 1e6:.0f} MB compressed; trees written in {work}")
        print(f"  (a {file_system(work)} file system); {times} run(s) per leg; {load_note()}\n")
        with LocalRegistry() as registry:
            ref = f"{registry.host}/bench/big:v1"
            run([*regload_cmd(), "push", f"{image.layout}:big", ref], timeout)
            os.sync()
            figures = measure(image, blobs, ref, work, times, timeout)
    finally:
        remove_tree(work)

    tar_, tarfile_, raw, unpack, ours, pull = figures
    print("figures (whole processes, wall time; entries/s over the tar entries of all layers):")
    for fig in figures:
        print_figure(fig, entries)
    print(f"ratios (their time / ours: above 1, regload is faster; {load_note()}):")
    print_ratio("regload extraction vs umoci raw unpack", ours, raw, ">= 1x: no slower")
    print_ratio("regload extraction vs umoci unpack", ours, unpack, ">= 1x: no slower")
    print_ratio("regload pull --output vs umoci unpack", pull, unpack, "-")
    print_ratio("regload extraction vs GNU tar -x (the floor)", ours, tar_, "-")
    print_ratio("regload extraction vs tarfile reading (Python)", ours, tarfile_, "-")
    return 0 if ours.ok and pull.ok else 1


def measure(image: OciImage, blobs: list[str], ref: str, work: Path, times: int, timeout: float) -> list[Figure]:
    def into_fresh(leg: str, once_in: Callable[[Path], float]) -> Callable[[int], float]:
        def once(i: int) -> float:
            out = work / f"{leg}-{i}"
            try:
                return once_in(out)
            finally:
                remove_tree(out)
                # Untimed: the write-back of this tree and of its removal would otherwise fall on
                # the next leg (on a disk; a tmpfs has none).
                os.sync()

        return once

    def gnu_tar(out: Path) -> float:
        out.mkdir()
        script = " && ".join(f"tar -C '{out}' --recursive-unlink -xzf '{blob}'" for blob in blobs)
        return run(["bash", "-c", script], timeout)[0]

    def tarfile_read(out: Path) -> float:
        return run([sys.executable, "-c", TARFILE_READ, *blobs], timeout)[0]

    def umoci(*command: str) -> Callable[[Path], float]:
        return lambda out: run(["umoci", *command, "--image", image.umoci_ref, str(out)], timeout)[0]

    def regload_extract(out: Path) -> float:
        manifest_hex = image.manifest.digest.split(":")[1]
        return run([sys.executable, "-c", REGLOAD_EXTRACT, str(image.layout), manifest_hex, str(out)], timeout)[0]

    def regload_pull(out: Path) -> float:
        return run([*regload_cmd(), "pull", ref, "--output", str(out)], timeout)[0]

    legs = [
        ("GNU tar -x, each layer (C: the floor)", into_fresh("tar", gnu_tar)),
        ("tarfile, read every member (no writes)", into_fresh("tarfile", tarfile_read)),
    ]
    for name, command in (("umoci raw unpack", ("raw", "unpack")), ("umoci unpack", ("unpack",))):
        if tool("umoci"):
            legs.append((name, into_fresh(command[0], umoci(*command))))
    legs.append(("regload extraction (RootfsSink, gevent)", into_fresh("regload", regload_extract)))
    legs.append(("regload pull --output (loopback registry)", into_fresh("pull", regload_pull)))
    figures = interleave(legs, times)  # the legs take turns: a change in load hits them alike
    if not tool("umoci"):
        missing = Figure("umoci", skipped="umoci not installed (apt-get install umoci)")
        figures[2:2] = [missing, missing]
    return figures


def count_entries(blobs: list[str]) -> int:
    total = 0
    for blob in blobs:
        with tarfile.open(blob, "r|gz") as tar:
            total += sum(1 for _ in tar)
    return total


def file_system(path: Path) -> str:
    return run(["stat", "--file-system", "--format", "%T", str(path)], 10)[1].strip()


def print_figure(fig: Figure, entries: int) -> None:
    if not fig.ok:
        print(f"  {fig.name:<52} skipped: {fig.skipped or 'no runs'}")
        return
    rate = entries / fig.best, entries / fig.median
    print(
        f"  {fig.name:<52} best {fig.best:7.3f} s  median {fig.median:7.3f} s"
        f"  ({rate[0]:8.0f} entries/s best, {rate[1]:8.0f} median)  [n={len(fig.seconds)}]"
    )


if __name__ == "__main__":
    sys.exit(main())
