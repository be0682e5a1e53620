"""Shared fixtures: real ``docker-registry`` processes in five modes, started once per session.

Each ``registry_*`` fixture is a :class:`tests.support.registries.RegistryFixture` with ``.url``,
``.host``, ``.username``/``.password`` (None when anonymous), ``.ca_cert``, ``.prefix``,
``.token_server`` and ``.mode``. ``any_registry`` runs a test once per mode. A missing
``docker-registry`` binary makes these fixtures error with the install hint: nothing is skipped.

Session fixtures are shared: use a repository name of your own per test, and compare token
server counts before and after rather than from zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import registries
from tests.support.images import OciImage, make_oci_layout
from tests.support.registries import RegistryFixture


def _registry(mode: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFixture]:
    bed = registries.start(mode, tmp_path_factory.mktemp(f"registry-{mode}"))
    try:
        yield bed
    finally:
        bed.close()


@pytest.fixture(scope="session")
def registry_anon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFixture]:
    """Anonymous, plain HTTP."""
    yield from _registry("anon", tmp_path_factory)


@pytest.fixture(scope="session")
def registry_basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFixture]:
    """htpasswd basic auth; user ``regload`` with a password full of special characters."""
    yield from _registry("basic", tmp_path_factory)


@pytest.fixture(scope="session")
def registry_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFixture]:
    """Bearer tokens from ``.token_server``, which wants the same basic credentials."""
    yield from _registry("token", tmp_path_factory)


@pytest.fixture(scope="session")
def registry_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFixture]:
    """Anonymous over HTTPS (test CA in ``.ca_cert``); HTTP/2 through ALPN."""
    yield from _registry("tls", tmp_path_factory)


@pytest.fixture(scope="session")
def registry_prefix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFixture]:
    """Anonymous, API under ``/some/prefix/v2/``; ``.seed`` serves the same storage at ``/v2/``."""
    yield from _registry("prefix", tmp_path_factory)


@pytest.fixture(scope="session", params=registries.MODES)
def any_registry(request: pytest.FixtureRequest) -> RegistryFixture:
    """Each of the five registries in turn."""
    bed: RegistryFixture = request.getfixturevalue(f"registry_{request.param}")
    return bed


@pytest.fixture(scope="session")
def tiny_image(tmp_path_factory: pytest.TempPathFactory) -> OciImage:
    """A two-layer OCI layout of a few bytes, tagged ``latest``."""
    layout: Path = tmp_path_factory.mktemp("tiny-image") / "oci"
    return make_oci_layout(
        layout,
        [
            {"etc/hostname": b"regload\n", "bin/hello": (b"#!/bin/sh\necho hello\n")},
            {"etc/motd": b"layer two\n"},
        ],
    )
