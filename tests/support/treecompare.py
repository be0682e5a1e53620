"""Compare two extracted root filesystems (ours against ``umoci unpack``'s, for instance).

``snapshot_tree(root)`` describes every path below ``root`` (``"."`` is the root itself) by what
an image defines: type, permission bits (setuid/setgid/sticky included), owner, size and sha256
of files, symlink text, device numbers, xattrs, the mtime of everything but directories, and
hard-link groups (the other paths in the tree sharing the inode). ``assert_same_tree(a, b)``
takes two roots or two snapshots and fails with a readable list of differences.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import defaultdict
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

Snapshot = dict[str, dict[str, Any]]

_TYPES = {
    stat.S_IFDIR: "dir",
    stat.S_IFREG: "file",
    stat.S_IFLNK: "symlink",
    stat.S_IFCHR: "char",
    stat.S_IFBLK: "block",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}
_HOST_XATTRS = ("security.selinux",)  # set by the host, not by the image


def snapshot_tree(root: str | Path, *, dir_mtimes: bool = False) -> Snapshot:
    """Describe the tree at ``root`` without following any symlink."""
    root = Path(root)
    out: Snapshot = {}
    inodes: dict[tuple[int, int], list[str]] = defaultdict(list)

    def visit(path: Path, rel: str) -> None:
        st = path.lstat()
        kind = _TYPES.get(stat.S_IFMT(st.st_mode), "unknown")
        entry: dict[str, Any] = {
            "type": kind,
            "mode": oct(stat.S_IMODE(st.st_mode)),
            "uid": st.st_uid,
            "gid": st.st_gid,
        }
        if kind != "dir" or dir_mtimes:
            entry["mtime_ns"] = st.st_mtime_ns
        if kind == "file":
            entry["size"] = st.st_size
            entry["sha256"] = _sha256(path)
            inodes[(st.st_dev, st.st_ino)].append(rel)
        elif kind == "symlink":
            entry["target"] = os.readlink(path)
        elif kind in ("char", "block"):
            entry["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
        xattrs = _xattrs(path)
        if xattrs:
            entry["xattrs"] = xattrs
        out[rel] = entry
        if kind == "dir":
            for child in sorted(os.listdir(path)):
                visit(path / child, child if rel == "." else f"{rel}/{child}")

    visit(root, ".")
    for group in inodes.values():
        if len(group) > 1:
            for rel in group:
                out[rel]["hardlinks"] = tuple(sorted(group))
    return out


def assert_same_tree(
    a: str | Path | Mapping[str, Mapping[str, Any]],
    b: str | Path | Mapping[str, Mapping[str, Any]],
    *,
    ignore: Collection[str] = (),
    dir_mtimes: bool = False,
) -> None:
    """Fail when the trees differ; ``ignore`` names fields left out (``"uid"``, ``"mtime_ns"``…)."""
    left = a if isinstance(a, Mapping) else snapshot_tree(a, dir_mtimes=dir_mtimes)
    right = b if isinstance(b, Mapping) else snapshot_tree(b, dir_mtimes=dir_mtimes)
    problems = [f"only in first: {p} ({left[p]['type']})" for p in sorted(left.keys() - right.keys())]
    problems += [f"only in second: {p} ({right[p]['type']})" for p in sorted(right.keys() - left.keys())]
    for path in sorted(left.keys() & right.keys()):
        fields = (left[path].keys() | right[path].keys()) - set(ignore)
        for field in sorted(fields):
            x, y = left[path].get(field), right[path].get(field)
            if x != y:
                problems.append(f"{path}: {field} {x!r} != {y!r}")
    if problems:
        shown = "\n  ".join(problems[:60])
        more = f"\n  … and {len(problems) - 60} more" if len(problems) > 60 else ""
        raise AssertionError(f"trees differ ({len(problems)} differences):\n  {shown}{more}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _xattrs(path: Path) -> dict[str, bytes]:
    if not hasattr(os, "listxattr"):
        return {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in sorted(names) if n not in _HOST_XATTRS}
