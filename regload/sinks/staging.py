"""A staging directory beside a sink's output, and the one rename that publishes the output.

Everything a sink writes goes into ``<parent>/.<name>.regload-XXXXXXXX`` (same file system as the
output, mode 0700). ``publish`` moves the finished file or directory to the user's path with a
single ``os.rename``, so nothing half-written ever appears there; ``remove`` deletes the rest.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from .. import fds
from ..errors import OutputError


def check_dir_output(output: Path) -> None:
    """Refuse an output directory that exists and is not empty (an empty one may be replaced)."""
    _check_parent(output)
    try:
        st = output.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"output {str(output)!r} exists and is not a directory")
    if any(os.scandir(output)):
        raise OutputError(f"output directory {str(output)!r} exists and is not empty")


def check_file_output(output: Path) -> None:
    """Refuse an output file whose path is a directory (an existing file is replaced)."""
    _check_parent(output)
    if output.is_dir():
        raise OutputError(f"output {str(output)!r} is a directory, expected a file path")


def _check_parent(output: Path) -> None:
    if not output.name or output.name in (".", ".."):
        raise OutputError(f"output {str(output)!r} does not name a file or directory")
    if not output.parent.is_dir():
        raise OutputError(f"output directory {str(output.parent)!r} does not exist")


class Staging:
    """The private work directory of one sink; created on first use."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        if self._path is None:
            try:
                made = tempfile.mkdtemp(prefix=f".{self.output.name}.regload-", dir=self.output.parent)
            except OSError as e:
                raise OutputError(
                    f"cannot create a staging directory beside {str(self.output)!r}: {e.strerror}"
                ) from None
            self._path = Path(made)
        return self._path

    def publish(self, finished: Path) -> None:
        """Rename ``finished`` (the staging directory or a path inside it) to the output path."""
        try:
            os.rename(finished, self.output)
            if finished == self._path:
                self._path = None  # it is the user's now
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise OutputError(f"output {str(self.output)!r} appeared while pulling and is in the way") from None
            raise OutputError(f"cannot move the result to {str(self.output)!r}: {e.strerror}") from None

    def remove(self) -> None:
        """Delete the staging directory and everything left in it (idempotent)."""
        if self._path is not None:
            fds.remove_tree(self._path)  # not shutil.rmtree: see regload.fds
            self._path = None


def default_dir_mode() -> int:
    """0777 less the process umask: the mode ``mkdir`` would have given."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o777 & ~mask
