"""A distribution-sized image tree, generated reproducibly and streamed into an OCI layout.

Small fixtures hide descriptor leaks and quadratic paths; this one has the shape of a real
distribution image (a Debian-like merged-/usr rootfs of 1,100 "packages"), ``scale`` times over::

    image = make_big_image(tmp_path / "layout", scale=1)   # 23,393 entries, 5,660 directories
    image.ref                                               # oci:…:big, for skopeo

Base layer, in the order ``tar`` writes a tree: ``bin``, ``sbin``, ``lib``, ``lib64`` as symlinks
into ``usr``; per package a doc directory, binaries (some setuid/setgid, some hard-linked under
another name or in another directory), shared libraries with their soname symlinks, a Python
package tree with ``__pycache__``, data, headers, config, and dpkg's ``info`` files (thousands of
entries in one directory); locales, and a zoneinfo tree whose ``posix/`` copy is hard links across
directories.

Upgrade layer: whiteouts of single files and of the whole locale tree (one locale of the same
layer, written before the whiteout, survives it: a whiteout hides lower layers only), opaque
package directories with new contents, files written through the merged-/usr symlinks
(``lib/…``, ``bin/…``), a hard link to a lower-layer file from another directory, and entries
replacing others of another type (a directory tree by a file, a file by a symlink or a
directory). Fix-up layer: whiteouts reached through the merged-/usr symlinks.

The three layers hold 30,478 tar entries. File sizes follow a small-file-heavy mix (75 % under
4 KiB, a few up to 256 KiB) of text-like content: ``scale=1`` is ~170 MB uncompressed, 93 MB as
gzip level 1.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.images import (
    OPAQUE,
    WHITEOUT,
    Dir,
    Entry,
    File,
    Hardlink,
    OciImage,
    Symlink,
    make_oci_layout_streamed,
)

Item = tuple[str, Entry]

PACKAGES_PER_SCALE = 1100
LANGS_PER_SCALE = 160
ZONE_REGIONS = ("Africa", "America", "Antarctica", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific")
LOCALE_DOMAINS = ("libc", "coreutils", "dpkg", "tar", "findutils", "grep", "sed", "bash")
MERGED_USR = ("bin", "sbin", "lib", "lib64")
ARCH = "x86_64-linux-gnu"


@dataclass(frozen=True)
class Pending:
    """A file whose body is made only as the layer is written: bodies are never all in memory."""

    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    version: int = 0


class Content:
    """Reproducible, compressible file bodies: slices of one pool of pseudo-words, chosen by the
    file's path (whatever the order files are made in) and headed by it, so no two are equal."""

    POOL_SIZE = 1 << 22

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        words = [_word(rng, 2, 10) for _ in range(4000)]
        text = " ".join(rng.choice(words) for _ in range(self.POOL_SIZE // 5))
        self.pool = text.encode()[: self.POOL_SIZE]
        self.seed = seed

    def body(self, path: str, version: int) -> bytes:
        """Mostly small files, as in a distribution: 75 % under 4 KiB, 23 % under 32 KiB."""
        rng = random.Random(f"{self.seed}:{version}:{path}")
        roll = rng.random()
        size = (
            rng.randint(0, 4096)
            if roll < 0.75
            else rng.randint(4096, 32768)
            if roll < 0.98
            else rng.randint(32768, 262144)
        )
        start = rng.randrange(self.POOL_SIZE - size)
        return (f"{path}\n".encode() + self.pool[start : start + size])[:size]

    def materialize(self, items: Iterable[Item]) -> Iterator[Item]:
        for path, entry in items:
            if isinstance(entry, Pending):
                yield path, File(self.body(path, entry.version), entry.mode, entry.uid, entry.gid)
            else:
                yield path, entry


def pending(path: str, mode: int = 0o644, uid: int = 0, gid: int = 0, version: int = 0) -> Item:
    return path, Pending(mode, uid, gid, version)


def _word(rng: random.Random, shortest: int, longest: int) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(shortest, longest)))


def package_names(scale: int) -> list[str]:
    rng = random.Random(7)
    stems = ["lib", "python3-", "gir1.2-", "", "", "", "x", "node-"]
    names = set()
    while len(names) < PACKAGES_PER_SCALE * scale:
        names.add(rng.choice(stems) + _word(rng, 3, 9))
    return sorted(names)


def with_parents(items: Iterator[Item]) -> Iterator[Item]:
    """Each entry preceded by its parent directories not yet written (0755), as ``tar`` would.
    Only for the base layer: a later layer's paths may go through a symlink of a lower one."""
    written: set[str] = set()
    for path, entry in items:
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in written:
                written.add(parent)
                yield parent, Dir()
        written.add(path)
        yield path, entry


def walk_order(item: Item) -> list[str]:
    """The order ``tar`` and docker's layer differ write entries in: a depth-first walk, names
    sorted within each directory (so a directory's entries come together)."""
    return item[0].split("/")


def base_layer(scale: int, content: Content) -> Iterator[Item]:
    return content.materialize(with_parents(iter(sorted(_base_entries(scale), key=walk_order))))


def _base_entries(scale: int) -> Iterator[Item]:
    for link in MERGED_USR:
        yield link, Symlink(f"usr/{link}")
    for d in ("usr/bin", "usr/sbin", f"usr/lib/{ARCH}", "usr/lib64", "usr/local/bin", "etc/alternatives", "root"):
        yield d, Dir(0o700 if d == "root" else 0o755)
    yield "tmp", Dir(0o1777)
    yield "var/tmp", Dir(0o1777)
    yield "var/mail", Dir(0o2775, gid=8)
    yield "usr/lib64/ld-linux-x86-64.so.2", Symlink(f"../lib/{ARCH}/ld-linux-x86-64.so.2")
    yield pending(f"usr/lib/{ARCH}/ld-linux-x86-64.so.2", 0o755)
    yield pending("etc/shadow", 0o640, gid=42)
    yield pending("etc/passwd")
    packages = package_names(scale)
    for i, pkg in enumerate(packages):
        yield from _package(i, pkg)
    yield from _locales(scale)
    yield from _zoneinfo(scale)


def _package(i: int, pkg: str) -> Iterator[Item]:
    doc = f"usr/share/doc/{pkg}"
    yield pending(f"{doc}/copyright")
    yield pending(f"{doc}/changelog.Debian.gz")
    if i % 3 == 0:
        mode = 0o4755 if i % 97 == 0 else 0o2755 if i % 89 == 0 else 0o755
        yield pending(f"usr/bin/{pkg}", mode)
        yield pending(f"usr/share/man/man1/{pkg}.1.gz")
        if i % 21 == 0:  # one program under two names, as perl and perl5.36.0
            yield f"usr/bin/{pkg}-{i}", Hardlink(f"usr/bin/{pkg}")
        if i % 30 == 0:  # and in another directory
            yield f"usr/sbin/{pkg}", Hardlink(f"usr/bin/{pkg}")
        if i % 12 == 0:  # managed by update-alternatives: absolute link text
            yield f"etc/alternatives/{pkg}", Symlink(f"/usr/bin/{pkg}")
    if i % 2 == 0:
        soname = f"lib{pkg}.so.{i % 7}"
        yield pending(f"usr/lib/{ARCH}/{soname}.{i % 5}.0")
        yield f"usr/lib/{ARCH}/{soname}", Symlink(f"{soname}.{i % 5}.0")
    if i % 3 == 1:
        top = f"usr/lib/python3/dist-packages/{pkg.replace('-', '_')}"
        yield pending(f"{top}/__init__.py")
        for sub in range(5):
            for name in ("__init__", "core", "util"):
                yield pending(f"{top}/sub{sub}/{name}.py")
                yield pending(f"{top}/sub{sub}/__pycache__/{name}.cpython-311.pyc")
    if i % 5 == 2:
        for k in range(3):
            yield pending(f"usr/share/{pkg}/data/set{k}/table.dat")
            yield pending(f"usr/share/{pkg}/data/set{k}/index.txt")
    if i % 6 == 3:
        yield pending(f"usr/include/{pkg}/{pkg}.h")
        for k in range(4):
            yield pending(f"usr/include/{pkg}/bits/part{k}.h")
    if i % 4 == 0:
        yield pending(f"etc/{pkg}/{pkg}.conf")
    yield pending(f"var/lib/dpkg/info/{pkg}.list")
    yield pending(f"var/lib/dpkg/info/{pkg}.md5sums")


def _locales(scale: int) -> Iterator[Item]:
    for n in range(LANGS_PER_SCALE * scale):
        for domain in LOCALE_DOMAINS:
            yield pending(f"usr/share/locale/l{n:03d}/LC_MESSAGES/{domain}.mo")


def _zoneinfo(scale: int) -> Iterator[Item]:
    for region in ZONE_REGIONS:
        for n in range(40 * scale):
            yield pending(f"usr/share/zoneinfo/{region}/City{n:02d}")
            yield f"usr/share/zoneinfo/posix/{region}/City{n:02d}", Hardlink(f"usr/share/zoneinfo/{region}/City{n:02d}")


def upgrade_layer(scale: int) -> Iterator[Item]:
    packages = package_names(scale)
    # A whiteout hides lower layers only: this locale, written before it in the same layer, stays.
    yield "usr/share/locale/C.UTF-8", Dir()
    yield "usr/share/locale/C.UTF-8/LC_MESSAGES", Dir()
    yield pending("usr/share/locale/C.UTF-8/LC_MESSAGES/libc.mo")
    yield "usr/share/locale", WHITEOUT
    for i, pkg in enumerate(packages):
        if i % 9 == 0:
            yield f"usr/share/doc/{pkg}/changelog.Debian.gz", WHITEOUT
        elif i % 9 == 1:
            yield pending(f"usr/share/doc/{pkg}/changelog.Debian.gz", version=1)  # a new version
        if i % 3 == 1 and i % 4 == 1:
            top = f"usr/lib/python3/dist-packages/{pkg.replace('-', '_')}"
            yield top, OPAQUE
            yield pending(f"{top}/__init__.py")
            yield f"{top}/v2", Dir()
            yield pending(f"{top}/v2/core.py")
        if i % 5 == 2 and i % 2 == 0:
            yield pending(f"usr/share/{pkg}/data")  # a directory tree becomes a file
        if i % 60 == 0:
            yield f"usr/bin/{pkg}", Symlink(f"{pkg}.real")  # a file becomes a symlink
            yield pending(f"usr/bin/{pkg}.real", 0o755)
    for k in range(20 * scale):
        yield pending(f"lib/{ARCH}/libnew{k}.so.1", 0o644)  # through lib -> usr/lib
        yield pending(f"bin/newtool{k}", 0o755)  # through bin -> usr/bin
    yield pending("usr/bin/newsu", 0o4755)
    yield "usr/local/bin/passwd-hard", Hardlink("etc/passwd")  # to a lower layer, another directory
    yield "etc/shadow", Dir(0o700)  # a file becomes a directory
    yield pending("etc/shadow/entries", 0o600)


def fixup_layer(scale: int) -> Iterator[Item]:
    for k in range(0, 20 * scale, 2):
        yield f"bin/newtool{k}", WHITEOUT  # through bin -> usr/bin
        yield f"lib/{ARCH}/libnew{k}.so.1", WHITEOUT
    yield pending("etc/fixed", 0o600)


def make_big_image(layout: Path, *, scale: int = 1, tag: str = "big") -> OciImage:
    """Write the three-layer image into ``layout`` (streamed: memory stays small at any scale)."""
    content = Content(seed=scale)
    layers = [
        base_layer(scale, content),
        content.materialize(upgrade_layer(scale)),
        content.materialize(fixup_layer(scale)),
    ]
    return make_oci_layout_streamed(layout, layers, tag=tag, compresslevel=1, auto_parents=False)
