"""Descriptors closed at once, and an ``rm -rf`` built on them, for bulk work on file trees.

Why not ``os.close``: the CLI and every Locust process run under ``gevent.monkey.patch_all()``,
and since gevent 25.8.1 the patched ``os.close`` closes a regular file at once but, for anything
else (directories, pipes, sockets), only *schedules* the ``close(2)`` for the event loop's next
iteration, so that a watcher still registered on the descriptor cannot crash libev (gevent issue
#2100). Extracting a layer, writing a layout or removing a tree opens and closes tens of
thousands of directories without ever yielding to the hub: with the patched close none of them
is really closed, and the process runs out of descriptors (``EMFILE``) half-way through a real
image. ``posix.close`` is the builtin that ``os.close`` re-exports before patching; the
descriptors handled here are never watched by the event loop, so closing them at once is
exactly what gevent's cooperation would end up doing, without waiting for the loop to turn.
``shutil.rmtree`` closes through ``os.close`` too, hence ``remove_tree`` and ``remove_at``.

The functions here hold at most three descriptors at a time, whatever the depth of the tree, so
a low ``RLIMIT_NOFILE`` is never what stops them.
"""

from __future__ import annotations

import os
import posix
import stat
from collections.abc import Iterator
from contextlib import contextmanager

#: Opens a directory, never through a symlink, and never into a child process.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

close = posix.close  # the real close(2), whatever gevent did to os.close (see above)


def open_dir_at(dir_fd: int | None, name: str) -> int:
    """Open the directory ``name`` (relative to ``dir_fd``; a path when ``dir_fd`` is None)."""
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


@contextmanager
def opened(fd: int) -> Iterator[int]:
    """Close ``fd`` at the end of the block, at once."""
    try:
        yield fd
    finally:
        close(fd)


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    """``lstat`` of ``name`` in ``dir_fd``, or None when nothing is there."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def remove_at(dir_fd: int, name: str, st: os.stat_result | None = None) -> None:
    """Remove one entry of ``dir_fd``, a whole subtree for a directory; symlinks are removed,
    never followed. ``st`` is the entry's ``lstat`` when the caller has it."""
    if st is None:
        st = lstat_at(dir_fd, name)
        if st is None:
            return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    _empty_dir(dir_fd, name)
    os.rmdir(name, dir_fd=dir_fd)


def remove_tree(path: str | os.PathLike[str]) -> None:
    """``rm -rf path``: nothing is followed, and directories a layer made read-only (a non-root
    pull of ``dr-xr-xr-x`` entries) are made writable on the way. A missing path is fine."""
    head, name = os.path.split(os.path.abspath(path))
    try:
        parent = open_dir_at(None, head)
    except FileNotFoundError:
        return
    with opened(parent):
        remove_at(parent, name)


def _empty_dir(parent_fd: int, name: str) -> None:
    """Remove everything below the directory ``name`` of ``parent_fd``, depth first.

    One descriptor is held at a time: the walk keeps the names still to visit at each level and
    goes back up through ``..`` (the real parent, as no symlink is ever followed down), so a
    tree of any depth is removed within any descriptor limit.
    """
    fd = _enter(parent_fd, name)
    pending: list[list[str]] = [os.listdir(fd)]  # os.listdir(fd) works on a dup, closed in C
    names: list[str] = []  # the path from ``name`` down to the directory ``fd`` holds
    try:
        while pending:
            todo = pending[-1]
            if not todo:  # this directory is empty now: go up and remove it
                pending.pop()
                if not names:
                    break
                up = os.open("..", DIR_FLAGS, dir_fd=fd)
                close(fd)
                fd = up
                os.rmdir(names.pop(), dir_fd=fd)
                continue
            child = todo.pop()
            st = lstat_at(fd, child)
            if st is None:
                continue
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(child, dir_fd=fd)
                continue
            down = _enter(fd, child, st)
            close(fd)
            fd = down
            names.append(child)
            pending.append(os.listdir(fd))
    finally:
        close(fd)


def _enter(parent_fd: int, name: str, st: os.stat_result | None = None) -> int:
    """Open the directory ``name`` with owner rwx on it, so its entries can be listed and removed:
    a layer's ``0555`` or ``0000`` directories stop a non-root user, and root too where it runs
    without CAP_DAC_OVERRIDE (some containers), so the bits are added whoever runs."""
    if st is None:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    if st.st_mode & 0o700 != 0o700:
        # fchmodat cannot refuse symlinks on Linux; lstat just said this is a directory, and
        # nothing else writes to the trees removed here.
        os.chmod(name, stat.S_IMODE(st.st_mode) | 0o700, dir_fd=parent_fd)
    return open_dir_at(parent_fd, name)
