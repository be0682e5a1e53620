"""Splitting ``PATH[:REF]`` arguments, where both the path and the ref may contain ``:``."""

from __future__ import annotations

from collections.abc import Callable


def split_path_ref(arg: str, exists: Callable[[str], bool]) -> tuple[str, str | None]:
    """Split ``arg`` into a path and an optional ref.

    The rule: the whole argument is the path if ``exists(arg)``; otherwise the longest prefix
    ending before a ``:`` for which ``exists`` holds is the path and the rest is the ref (so
    ``layout:alpine:3.19`` gives ``("layout", "alpine:3.19")``, and a directory whose own name
    has a ``:`` still works); if no prefix exists, the whole argument is the path (and opening
    it will report it missing). An empty ref counts as none.
    """
    if exists(arg):
        return arg, None
    cut = arg.rfind(":")
    while cut > 0:
        if exists(arg[:cut]):
            return arg[:cut], arg[cut + 1 :] or None
        cut = arg.rfind(":", 0, cut)
    return arg, None
