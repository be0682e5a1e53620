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
import stat
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from ..fds import close, lstat_at, open_dir_at, opened, remove_at

MAX_SYMLINK_HOPS = 40  # Linux's own limit (path_resolution(7))
MAX_CHAIN = 16  # directories ``each_exact`` keeps open along a path (deeper: one at a time)


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


class SafeTree:
    """An extraction root, addressed by component lists relative to it.

    Descriptors are closed with ``fds.close``, never ``os.close`` (whose gevent-patched version
    defers the close of a directory until the event loop runs: see ``regload.fds``); a walk holds
    one directory open at a time, ``_RecentDirs`` 16 and ``each_exact`` a chain of at most 16, so
    extraction needs a few dozen descriptors whatever the size or depth of the tree.
    """

    def __init__(self, root: str, on_implicit_dir: Callable[[list[str]], None]) -> None:
        self.root_fd = open_dir_at(None, root)
        self._on_implicit_dir = on_implicit_dir
        self._recent = _RecentDirs()

    def close(self) -> None:
        self._recent.close()
        close(self.root_fd)

    def parent_for(self, parts: list[str]) -> tuple[int, list[str]]:
        """The directory ``parts`` to create an entry in, missing directories made on the way
        (mode 0700 until ``Extractor.finish``); a non-directory on the way is an error. Returns
        ``(fd, canonical components)``; the fd is the tree's, valid until the next call."""
        key = tuple(parts)
        found = self._recent.get(key)
        if found is not None:
            return found
        # Resolving a/b/c is resolving c from where a/b led: start at the longest prefix known.
        fd, canon, rest = self.root_fd, [], parts
        for depth in range(len(key) - 1, 0, -1):
            prefix = self._recent.get(key[:depth], touch=False)
            if prefix is not None:
                fd, canon, rest = prefix[0], prefix[1], parts[depth:]
                break
        walked = self._walk(os.dup(fd), list(canon), rest, create=True)
        assert walked is not None
        self._recent.put(key, walked)
        return walked

    def remember(self, parts: list[str], fd: int, canon: list[str]) -> None:
        """``fd`` is the directory ``parts`` (canonical ``canon``), just made or merged: its
        entries, which a tar stream lists next, will be created in it. The tree owns ``fd`` now."""
        self._recent.put(tuple(parts), (fd, canon))

    @contextmanager
    def directory(self, parts: list[str]) -> Iterator[tuple[int, list[str]] | None]:
        """Open the existing directory ``parts`` (symlinks on the way resolved as described
        above). Yields ``(fd, canonical components)``, or None when it does not exist or a
        component is not a directory."""
        found = self._walk(os.dup(self.root_fd), [], parts, create=False)
        try:
            yield found
        finally:
            if found is not None:
                close(found[0])

    def remove(self, dir_fd: int, name: str, st: os.stat_result) -> None:
        """Remove one entry (a whole subtree for a directory), never following symlinks."""
        if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
            self._recent.forget()  # what a path resolves to may have changed
        remove_at(dir_fd, name, st)

    def _walk(self, fd: int, canon: list[str], parts: list[str], create: bool) -> tuple[int, list[str]] | None:
        """Resolve ``parts`` from the directory ``fd`` (whose canonical path is ``canon``; both
        are the walk's own and consumed)."""
        todo = list(reversed(parts))
        hops = 0
        try:
            while todo:
                comp = todo.pop()
                if comp in ("", "."):
                    continue
                if comp == "..":  # only ever from a symlink target: split_name removed the others
                    if not canon:
                        raise Refused("'..' leads out of the root")
                    canon.pop()
                    # ".." of a directory reached without following any link is its real parent.
                    fd = self._step(fd, "..")
                    continue
                st = lstat_at(fd, comp)
                if st is None:
                    if not create:
                        return None
                    os.mkdir(comp, 0o700, dir_fd=fd)
                    self._on_implicit_dir(canon + [comp])
                elif stat.S_ISLNK(st.st_mode):
                    hops += 1
                    if hops > MAX_SYMLINK_HOPS:
                        raise Malformed("too many levels of symbolic links")
                    target = os.readlink(comp, dir_fd=fd)
                    if not target or symlink_escapes(canon, target):
                        where = "/".join(canon + [comp])
                        raise Refused(f"path goes through symlink {where!r} -> {target!r}, which leads out of the root")
                    todo.extend(reversed(target.split("/")))
                    continue
                elif not stat.S_ISDIR(st.st_mode):
                    if not create:
                        return None  # as ENOTDIR: nothing is there to find
                    raise Malformed(f"{'/'.join(canon + [comp])!r} is not a directory")
                fd = self._step(fd, comp)
                canon.append(comp)
            found, fd = fd, -1
            return found, canon
        finally:
            if fd >= 0:
                close(fd)

    @staticmethod
    def _step(fd: int, name: str) -> int:
        """Open ``name`` in ``fd``, then close ``fd``: the walk's one descriptor moves down (or
        up). When the open fails, ``fd`` is left open for the caller to close."""
        nxt = open_dir_at(fd, name)
        close(fd)
        return nxt

    def each_exact(self, paths: Iterable[list[str]]) -> Iterator[tuple[list[str], int]]:
        """Open each directory of ``paths`` whose path has no symlink at all (``O_NOFOLLOW`` on
        every component) and yield ``(parts, fd)``; the fd is valid until the next one. Paths
        gone or changed are skipped. Neighbouring paths share the opens of their ancestors, whose
        chain stays open (paths deeper than ``MAX_CHAIN`` are opened alone)."""
        chain: list[tuple[str, int]] = []
        try:
            for parts in paths:
                shared = 0
                while shared < min(len(chain), len(parts)) and chain[shared][0] == parts[shared]:
                    shared += 1
                while len(chain) > shared:
                    close(chain.pop()[1])
                if len(parts) > MAX_CHAIN:
                    fd = self.open_exact(parts)
                    if fd is not None:
                        with opened(fd):
                            yield parts, fd
                    continue
                try:
                    for comp in parts[shared:]:
                        chain.append((comp, open_dir_at(chain[-1][1] if chain else self.root_fd, comp)))
                except OSError:  # ENOENT, ENOTDIR, ELOOP: removed or replaced by a later layer
                    continue
                yield parts, chain[-1][1] if chain else self.root_fd
        finally:
            for _, fd in chain:
                close(fd)

    def open_exact(self, parts: list[str]) -> int | None:
        """Open a directory whose path has no symlink at all (None if it is gone or changed)."""
        fd = os.dup(self.root_fd)
        for comp in parts:
            try:
                fd = self._step(fd, comp)
            except OSError:  # ENOENT, ENOTDIR, ELOOP: removed or replaced by a later layer
                close(fd)
                return None
        return fd

    def purge(self, dir_fd: int, name: str, rel: str, keep: Callable[[str], bool]) -> None:
        """Remove ``name`` unless ``keep(rel)``; when kept and a directory, purge its children."""
        st = lstat_at(dir_fd, name)
        if st is None:
            return
        if not keep(rel):
            self.remove(dir_fd, name, st)
            return
        if stat.S_ISDIR(st.st_mode):
            with opened(open_dir_at(dir_fd, name)) as sub:
                for child in os.listdir(sub):
                    self.purge(sub, child, f"{rel}/{child}", keep)


class _RecentDirs:
    """The directories entries were last created in, open, most recent last: a tar stream lists
    a directory's entries together and comes back to its parent next, so most entries need no
    walk at all, and the others start from a known prefix.

    Removing a directory or a symlink may change what any path resolves to: ``forget`` then
    drops every entry. Their descriptors are closed at the next ``get``, not at once: the entry
    being created when the removal happened still uses its parent's.
    """

    SIZE = 16  # descriptors held at most

    def __init__(self) -> None:
        self._dirs: OrderedDict[tuple[str, ...], tuple[int, list[str]]] = OrderedDict()
        self._forgotten: list[int] = []

    def get(self, key: tuple[str, ...], touch: bool = True) -> tuple[int, list[str]] | None:
        self._close_forgotten()
        found = self._dirs.get(key)
        if found is not None and touch:
            self._dirs.move_to_end(key)
        return found

    def put(self, key: tuple[str, ...], found: tuple[int, list[str]]) -> None:
        replaced = self._dirs.pop(key, None)  # a merged directory met again: not the one in use
        if replaced is not None:
            close(replaced[0])
        self._dirs[key] = found
        if len(self._dirs) > self.SIZE:
            close(self._dirs.popitem(last=False)[1][0])

    def forget(self) -> None:
        self._forgotten += [fd for fd, _ in self._dirs.values()]
        self._dirs.clear()

    def close(self) -> None:
        self.forget()
        self._close_forgotten()

    def _close_forgotten(self) -> None:
        while self._forgotten:
            close(self._forgotten.pop())
