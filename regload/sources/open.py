"""Opening a push source from its command-line spelling."""

from __future__ import annotations

import os

from ..errors import ManifestError, SourceError
from ..manifest import Platform
from .base import SourceImage
from .compress import DEFAULT_LEVEL, INLINE, Threads
from .digest_cache import DigestCache
from .docker_save import open_docker_save
from .oci_layout import open_oci_layout, parse_layout_arg
from .pathref import split_path_ref
from .synthetic import PREFIX, parse_synthetic


def open_source(
    spec: str,
    *,
    compression: str = "gzip",
    level: int | None = DEFAULT_LEVEL,
    platform: Platform | str | None = None,
    tmpdir: str | None = None,
    threads: Threads = INLINE,
    cache: DigestCache | None = None,
) -> SourceImage:
    """Open what ``spec`` names:

    - ``synthetic[:layers=N,size=S,seed=K,gzip=R]``: a generated image;
    - ``oci:DIR[:REF]`` or an existing directory ``DIR[:REF]``: an OCI image layout;
    - ``docker-archive:FILE[:TAG]`` or an existing file ``FILE[:TAG]``: a ``docker save`` tarball.

    ``compression``, ``level``, ``tmpdir`` (for spool files) and ``threads`` and ``cache``
    (see ``compress.py``) apply to tarballs, ``platform``
    to layouts whose image is an index. ``close()`` the result when done.
    """
    if isinstance(platform, str):
        platform = _platform(platform)
    if spec == PREFIX or spec.startswith(PREFIX + ":"):
        return parse_synthetic(spec).image()
    if spec.startswith("oci:"):
        path, ref = parse_layout_arg(spec[4:])
        return open_oci_layout(path, ref, platform)
    if spec.startswith("docker-archive:"):
        path, tag = split_path_ref(spec[15:], os.path.isfile)
        return open_docker_save(path, compression, level, select=tag, tmpdir=tmpdir, threads=threads, cache=cache)
    path, ref = split_path_ref(spec, os.path.exists)
    if os.path.isdir(path):
        return open_oci_layout(path, ref, platform)
    if os.path.exists(path):
        return open_docker_save(path, compression, level, select=ref, tmpdir=tmpdir, threads=threads, cache=cache)
    raise SourceError(
        f"no such file or directory: {spec} (SOURCE is a docker save tarball, an OCI layout directory[:REF]"
        " or synthetic:layers=N,size=S,seed=K)"
    )


def _platform(text: str) -> Platform:
    try:
        return Platform.parse(text)
    except ManifestError as e:
        raise SourceError(str(e)) from None
