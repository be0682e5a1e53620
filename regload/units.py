"""Byte sizes and durations written the way people write them: ``10MiB``, ``512k``, ``1GB``,
``4096``; ``30s``, ``2m``, ``500ms``, ``1h``, ``12.5``."""

from __future__ import annotations

import re
from decimal import Decimal

from .errors import UsageError

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


MAX_SIZE = 2**63 - 1  # the most a file offset, a Content-Length or a tar header can carry


def parse_size(text: str, what: str = "size") -> int:
    m = _SIZE_RE.match(text)
    unit = m.group(2).lower() if m else ""
    shown = repr(text) if len(text) <= 40 else repr(text[:37] + "...")
    if not m or unit not in _UNITS:
        raise UsageError(
            f"invalid {what} {shown}: expected a number with an optional unit (B, KiB, MiB, GiB, KB, MB, GB)"
        )
    size = int(Decimal(m.group(1)) * _UNITS[unit])  # exact: a float overflows on 400 digits
    if size > MAX_SIZE:
        raise UsageError(f"invalid {what} {shown}: more than {MAX_SIZE} bytes")
    return size


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds of ``30s``, ``2m``, ``500ms``, ``1h`` or a plain number of seconds."""
    m = _DURATION_RE.match(text)
    if not m:
        raise UsageError(f"invalid {what} duration {text.strip()!r}: expected e.g. 30s, 2m, 500ms, 1h")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
