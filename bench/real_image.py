#!/usr/bin/env python3
"""A real image, whole processes: regload beside skopeo, a fresh docker-registry for every run.

    python bench/real_image.py [--repeat 3]     # a Debian bookworm minbase image (debootstrap, root)
    python bench/real_image.py --short          # a small tree instead (CI smoke run)

The image is a ``docker save`` tarball of two layers: a Debian minbase rootfs (``debootstrap``,
kept in ``~/.cache/regload-bench`` between runs) and a small upgrade layer, as ``docker save``
writes them (uncompressed tars). Legs, taking turns, each against a registry started for it:

- push: ``regload push docker-archive:TAR REF`` (layers gzip-compressed by ISA-L, the default),
  the same with ``--compression-level 6`` (zlib at docker's level: the old default), and
  ``skopeo copy docker-archive:TAR docker://REF``;
- pull into an OCI layout: ``regload pull REF --format oci -o DIR`` and
  ``skopeo copy docker://REF oci:DIR`` (the image pushed by regload beforehand, untimed).

Times are the commands' wall times, start-up included. Targets: push >= 2x faster than skopeo,
pull >= 1.5x faster. The compression figures (MB/s and ratio of each gzip encoder on the base
layer, in this process) show what the push pays per byte.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _blobs import Figure, interleave, load_note, print_figure, print_ratio, regload_cmd, run, tool  # noqa: E402
from isal import isal_zlib  # noqa: E402

from regload.local_registry import LocalRegistry  # noqa: E402
from tests.support.debian import debian_image, debootstrap  # noqa: E402

CACHE = Path.home() / ".cache" / "regload-bench"
TIMEOUT = 900


def debian_rootfs() -> Path:
    rootfs = CACHE / "debian-rootfs"
    if not (rootfs / "usr" / "bin").is_dir():
        shutil.rmtree(rootfs, ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"debootstrap into {rootfs} (once) …", flush=True)
        debootstrap(rootfs)
    return rootfs


def small_rootfs(work: Path) -> Path:
    """For --short: a copy of an installed package tree (a few MB of text and binaries)."""
    import locust

    rootfs = work / "small-rootfs"
    shutil.copytree(Path(locust.__file__).parent, rootfs / "usr" / "lib" / "locust", symlinks=True)
    (rootfs / "usr" / "bin").mkdir(parents=True)
    return rootfs


def docker_save(rootfs: Path, work: Path) -> Path:
    """The image as ``docker save`` writes it: built as an OCI layout, pushed to a registry and
    pulled back as a docker archive (uncompressed layer tars, ``manifest.json``)."""
    layout = work / "layout"
    debian_image(layout, rootfs, tag="v1")
    archive = work / "image.tar"
    with LocalRegistry() as registry:
        ref = f"{registry.host}/bench/debian:v1"
        run([*regload_cmd(), "push", f"oci:{layout}:v1", ref], TIMEOUT)
        run([*regload_cmd(), "pull", ref, "--format", "docker-archive", "-o", str(archive)], TIMEOUT)
    shutil.rmtree(layout)
    return archive


def compression_figures(archive: Path) -> None:
    """Each gzip encoder on the largest layer of the archive, in this process."""
    import tarfile

    with tarfile.open(archive) as tar:
        member = max((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.size)
        data = tar.extractfile(member).read()  # type: ignore[union-attr]
    size = len(data)
    print(f"gzip encoders on the base layer ({size / 1e6:.0f} MB uncompressed), one core:")
    for name, make in (
        ("zlib level 6 (docker's, the old default)", lambda: zlib.compressobj(6, zlib.DEFLATED, 31)),
        ("zlib level 1", lambda: zlib.compressobj(1, zlib.DEFLATED, 31)),
        ("ISA-L level 1", lambda: isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)),
        ("ISA-L level 2 (regload's default)", lambda: isal_zlib.compressobj(2, isal_zlib.DEFLATED, 31)),
        ("ISA-L level 3", lambda: isal_zlib.compressobj(3, isal_zlib.DEFLATED, 31)),
    ):
        encoder = make()
        started = time.process_time()
        out = sum(len(encoder.compress(data[i : i + (1 << 20)])) for i in range(0, size, 1 << 20))
        out += len(encoder.flush())
        seconds = time.process_time() - started
        print(f"  {name:<44} {size / seconds / 1e6:7.0f} MB/s  ratio {size / out:5.2f}")
    started = time.process_time()
    hashlib.sha256(data).digest()
    print(f"  {'sha256 (for comparison)':<44} {size / (time.process_time() - started) / 1e6:7.0f} MB/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="a small tree, one run per leg (CI smoke run)")
    parser.add_argument("--repeat", type=int, help="runs per leg (default 3, --short 1)")
    args = parser.parse_args()
    times = args.repeat or (1 if args.short else 3)
    work = Path(tempfile.mkdtemp(prefix="regload-bench-real-"))
    try:
        rootfs = small_rootfs(work) if args.short else debian_rootfs()
        archive = docker_save(rootfs, work)
        print(f"image: {'a small tree' if args.short else 'Debian bookworm minbase'}, docker save tarball")
        print(f"  {archive.stat().st_size / 1e6:.0f} MB, 2 layers; {times} run(s) per leg; {load_note()}\n")
        figures = measure(archive, work, times)
        compression_figures(archive)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rl_push, rl_push_zlib, sk_push, rl_pull, sk_pull = figures
    print("\nfigures (whole commands, wall time):")
    for figure in figures:
        print_figure(figure, None)
    print(f"ratios ({load_note()}):")
    print_ratio("regload push vs skopeo copy docker-archive:", rl_push, sk_push, ">= 2x faster")
    print_ratio("regload push --compression-level 6 vs skopeo", rl_push_zlib, sk_push, "-")
    print_ratio("regload pull --format oci vs skopeo copy oci:", rl_pull, sk_pull, ">= 1.5x faster")
    return 0 if rl_push.ok and rl_pull.ok else 1


def measure(archive: Path, work: Path, times: int) -> list[Figure]:
    def timed(command: list[str], registry: LocalRegistry) -> float:
        wall, _ = run([part.replace("REGISTRY", registry.host) for part in command], TIMEOUT)
        return wall

    def push_leg(command: list[str]) -> Callable[[int], float]:
        def once(_: int) -> float:
            with LocalRegistry() as registry:
                return timed(command, registry)

        return once

    def pull_leg(command: list[str], output: Path) -> Callable[[int], float]:
        def once(_: int) -> float:
            with LocalRegistry() as registry:
                run([*regload_cmd(), "push", f"docker-archive:{archive}", f"{registry.host}/bench/debian:v1"], TIMEOUT)
                try:
                    return timed(command, registry)
                finally:
                    shutil.rmtree(output, ignore_errors=True)

        return once

    ref = "REGISTRY/bench/debian:v1"
    legs = [
        ("regload push docker-archive: (ISA-L)", push_leg([*regload_cmd(), "push", f"docker-archive:{archive}", ref])),
        (
            "regload push --compression-level 6 (zlib)",
            push_leg([*regload_cmd(), "push", "--compression-level", "6", f"docker-archive:{archive}", ref]),
        ),
    ]
    skopeo = tool("skopeo")
    if skopeo:
        legs.append(
            (
                "skopeo copy docker-archive: docker://",
                push_leg(
                    [skopeo, "copy", "-q", "--dest-tls-verify=false", f"docker-archive:{archive}", f"docker://{ref}"]
                ),
            )
        )
    rl_out, sk_out = work / "regload-oci", work / "skopeo-oci"
    legs.append(
        (
            "regload pull --format oci",
            pull_leg([*regload_cmd(), "pull", ref, "--format", "oci", "-o", str(rl_out)], rl_out),
        )
    )
    if skopeo:
        legs.append(
            (
                "skopeo copy docker:// oci:",
                pull_leg(
                    [skopeo, "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"oci:{sk_out}:v1"], sk_out
                ),
            )
        )
    figures = interleave(legs, times)
    if not skopeo:
        figures.insert(2, Figure("skopeo copy docker-archive: docker://", skipped="skopeo not installed"))
        figures.append(Figure("skopeo copy docker:// oci:", skipped="skopeo not installed"))
    return figures


if __name__ == "__main__":
    sys.exit(main())
