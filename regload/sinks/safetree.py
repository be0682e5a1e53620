"""Path resolution inside an extraction root that can never leave it.

Every directory is opened relative to its parent's file descriptor with ``O_NOFOLLOW``, so the
kernel never follows a symlink on our behalf. Symlinks met on the way are resolved here, by
hand: a relative target that stays inside the root is followed (as docker and umoci do for
``lib -> usr/lib``); an absolute target, or one whose ``..`` climbs above the root, is refused,
because its meaning on the host is outside the tree. The final component of a path is never
followed: callers lstat it and act on the link itself.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_SYMLINK_HOPS = 40  # Linux's own limit (path_resolution(7))


class Refused(Exception):
    """The path would lead outside the root (becomes ``UnsafeLayer``)."""


class Malformed(Exception):
    """The entry cannot be applied to the tree (becomes ``ProtocolError``)."""


def split_name(name: str) -> list[str]:
    """Lexically clean a tar entry name into components, refusing names that leave the root.

    ``./a//b/`` → ``[a, b]``; ``a/../b`` → ``[b]``; ``/a`` and ``a/../../b`` are refused.
    """
    if name.startswith("/"):
        raise Refused("absolute path")
    parts: list[str] = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                raise Refused("'..' leads out of the root")
            parts.pop()
        else:
            parts.append(comp)
    return parts


def symlink_escapes(link_dir: list[str], target: str) -> bool:
    """True when ``target``, read as a symlink in directory ``link_dir``, points outside the root
    (lexically: absolute, or more ``..`` than the link is deep)."""
    if target.startswith("/"):
        return True
    depth = len(link_dir)
    for comp in target.split("/"):
        if comp == "..":
            depth -= 1
            if depth < 0:
                return True
        elif comp not in ("", "."):
            depth += 1
    return False


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def remove_at(dir_fd: int, name: str, st: os.stat_result) -> None:
    """Remove one entry (a whole subtree for a directory) without following symlinks."""
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)  # the fd-based rmtree never follows symlinks
    else:
        os.unlink(name, dir_fd=dir_fd)


class SafeTree:
    """An extraction root, addressed by component lists relative to it."""

    def __init__(self, root: str, on_implicit_dir: Callable[[list[str]], None]) -> None:
        self.root_fd = os.open(root, DIR_FLAGS)
        self._on_implicit_dir = on_implicit_dir

    def close(self) -> None:
        os.close(self.root_fd)

    @contextmanager
    def directory(self, parts: list[str], create: bool) -> Iterator[tuple[int, list[str]] | None]:
        """Open the directory ``parts`` (symlinks on the way resolved as described above).

        Yields ``(fd, canonical components)``, or None when it does not exist (or a component is
        not a directory) and ``create`` is False. With ``create``, missing directories are made
        (mode 0700 until ``Extractor.finish``); a non-directory on the way is an error.
        """
        found = self._open(parts, create)
        try:
            yield found
        finally:
            if found is not None:
                os.close(found[0])

    def _open(self, parts: list[str], create: bool) -> tuple[int, list[str]] | None:
        fds = [os.dup(self.root_fd)]
        canon: list[str] = []
        todo = list(reversed(parts))
        hops = 0
        try:
            while todo:
                comp = todo.pop()
                if comp in ("", "."):
                    continue
                if comp == "..":  # only ever from a symlink target: split_name removed the others
                    canon.pop()
                    os.close(fds.pop())
                    continue
                st = lstat_at(fds[-1], comp)
                if st is None:
                    if not create:
                        return None
                    os.mkdir(comp, 0o700, dir_fd=fds[-1])
                    self._on_implicit_dir(canon + [comp])
                elif stat.S_ISLNK(st.st_mode):
                    hops += 1
                    if hops > MAX_SYMLINK_HOPS:
                        raise Malformed("too many levels of symbolic links")
                    target = os.readlink(comp, dir_fd=fds[-1])
                    if not target or symlink_escapes(canon, target):
                        where = "/".join(canon + [comp])
                        raise Refused(f"path goes through symlink {where!r} -> {target!r}, which leads out of the root")
                    todo.extend(reversed(target.split("/")))
                    continue
                elif not stat.S_ISDIR(st.st_mode):
                    if not create:
                        return None  # as ENOTDIR: nothing is there to find
                    raise Malformed(f"{'/'.join(canon + [comp])!r} is not a directory")
                fds.append(os.open(comp, DIR_FLAGS, dir_fd=fds[-1]))
                canon.append(comp)
            return fds.pop(), canon
        finally:
            for fd in fds:
                os.close(fd)

    def open_exact(self, parts: list[str]) -> int | None:
        """Open a directory whose path has no symlink at all (None if it is gone or changed)."""
        fd = os.dup(self.root_fd)
        for comp in parts:
            try:
                nxt = os.open(comp, DIR_FLAGS, dir_fd=fd)
            except OSError:  # ENOENT, ENOTDIR, ELOOP: removed or replaced by a later layer
                os.close(fd)
                return None
            os.close(fd)
            fd = nxt
        return fd

    def purge(self, dir_fd: int, name: str, rel: str, keep: Callable[[str], bool]) -> None:
        """Remove ``name`` unless ``keep(rel)``; when kept and a directory, purge its children."""
        st = lstat_at(dir_fd, name)
        if st is None:
            return
        if not keep(rel):
            remove_at(dir_fd, name, st)
            return
        if stat.S_ISDIR(st.st_mode):
            sub = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
            try:
                for child in os.listdir(sub):
                    self.purge(sub, child, f"{rel}/{child}", keep)
            finally:
                os.close(sub)
