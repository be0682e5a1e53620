"""Byte-exact ustar headers, the same in every Python version (synthetic layers, docker-archive).

``tarfile.TarInfo.tobuf`` is not: CPython 3.12 changed how it writes the device fields of
regular files, which would change every synthetic layer digest. POSIX.1-1988 ustar layout.
"""

from __future__ import annotations

BLOCK = 512
_OCTAL_MAX_SIZE = 8**11  # an 11-digit octal size field holds less than 8 GiB


def header(name: str, *, directory: bool = False, size: int = 0, mode: int = 0o644, mtime: int = 0) -> bytes:
    """One 512-byte header block for a regular file or a directory owned by 0:0."""
    raw_name = name.encode("ascii")
    if len(raw_name) > 100:
        raise ValueError(f"tar member name too long: {name!r}")
    fields = [
        raw_name.ljust(100, b"\0"),
        _octal(mode, 8),
        _octal(0, 8),  # uid
        _octal(0, 8),  # gid
        _size(size),
        _octal(mtime, 12),
        b" " * 8,  # checksum, computed over the header with this field as spaces
        b"5" if directory else b"0",
        bytes(100),  # linkname
        b"ustar\x0000",
        bytes(32),  # uname
        bytes(32),  # gname
        _octal(0, 8),  # devmajor
        _octal(0, 8),  # devminor
        bytes(155),  # prefix
    ]
    block = b"".join(fields).ljust(BLOCK, b"\0")
    checksum = b"%06o\0 " % sum(block)
    return block[:148] + checksum + block[156:]


def padding(size: int) -> bytes:
    """Zeros that complete the last block of ``size`` bytes of content."""
    return bytes(-size % BLOCK)


END = bytes(2 * BLOCK)  # two zero blocks end an archive


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _size(size: int) -> bytes:
    if size < _OCTAL_MAX_SIZE:
        return _octal(size, 12)
    return ((0x80 << 88) | size).to_bytes(12, "big")  # GNU base-256, read by every current tar
