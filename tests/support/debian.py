"""A real Debian rootfs (``debootstrap --variant=minbase``, Debian package ``debootstrap``) made
into the two-layer image a new user would try first.

Layer 1 is the rootfs as GNU tar writes it (``tar --numeric-owner -C rootfs .``: merged-/usr
symlinks, hard links, device nodes, setuid programs). Layer 2 deletes files and the whole
``usr/share/doc`` tree, makes ``etc/apt/apt.conf.d`` opaque, and adds a symlink, a hard link to
a lower-layer file from another directory, a setuid file and a file written through
``lib -> usr/lib``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import BinaryIO

from tests.support.images import (
    OPAQUE,
    WHITEOUT,
    File,
    Hardlink,
    OciImage,
    Symlink,
    make_oci_layout_of_layer_blobs,
    write_gzip_layer,
    write_layer_blob,
)

SUITE = "bookworm"
MIRROR = os.environ.get("REGLOAD_DEBIAN_MIRROR", "http://deb.debian.org/debian")
#: The downloaded packages are kept between runs: debootstrap then only unpacks them.
DEB_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "regload-tests" / "debootstrap"

UPGRADE = [
    ("etc/motd", WHITEOUT),
    ("usr/bin/wall", WHITEOUT),
    ("usr/share/doc", WHITEOUT),
    ("etc/apt/apt.conf.d", OPAQUE),
    ("etc/apt/apt.conf.d/99regload", File(b'APT::Install-Recommends "false";\n')),
    ("usr/local/bin/sh-link", Symlink("/bin/dash")),
    ("usr/local/bin/ls", Hardlink("usr/bin/ls")),
    ("usr/local/sbin/suid-tool", File(b"#!/bin/sh\nid\n", mode=0o4755)),
    ("lib/regload/through-lib.conf", File(b"written through lib -> usr/lib\n")),
]


def debootstrap(target: Path, timeout: float = 900) -> Path:
    """A minbase Debian rootfs at ``target`` (needs root and the Debian mirror)."""
    binary = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if binary is None:
        raise RuntimeError("debootstrap is not installed: apt-get install debootstrap (./dev setup does)")
    DEB_CACHE.mkdir(parents=True, exist_ok=True)
    cmd = [binary, "--variant=minbase", f"--cache-dir={DEB_CACHE}", SUITE, str(target), MIRROR]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}")
    return target


def debian_image(layout: Path, rootfs: Path, tag: str = "v2") -> OciImage:
    base = write_gzip_layer(layout, lambda out: _gnu_tar(rootfs, out), compresslevel=1)
    upgrade = write_layer_blob(layout, UPGRADE, auto_parents=False)
    return make_oci_layout_of_layer_blobs(layout, [base, upgrade], tag=tag)


def _gnu_tar(rootfs: Path, out: BinaryIO) -> None:
    cmd = ["tar", "--create", "--numeric-owner", "--sort=name", "--directory", str(rootfs), "."]
    # stderr to a file, not a pipe: a pipe nobody reads while stdout is read could fill and stall tar.
    with tempfile.TemporaryFile() as messages:
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=messages) as tar:
            assert tar.stdout is not None
            while chunk := tar.stdout.read(1 << 20):
                out.write(chunk)
        if tar.returncode != 0:
            messages.seek(0)
            raise RuntimeError(f"tar of {rootfs} failed ({tar.returncode}): {messages.read().decode(errors='replace')}")
