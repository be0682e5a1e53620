"""Shared fixtures: real ``docker-registry`` processes in five modes, started once per session.

Each ``registry_*`` fixture is a :class:`tests.support.registries.RegistryFixture` with ``.url``,
``.host``, ``.username``/``.password`` (None when anonymous), ``.ca_cert``, ``.prefix``,
``.token_server`` and ``.mode``. ``any_registry`` runs a test once per mode. A missing
``docker-registry`` binary makes these fixtures error with the install hint: nothing is skipped.

Session fixtures are shared: use a repository name of your own per test, and compare token
server counts before and after rather than from zero.

Every test carries exactly one layer marker (``LAYERS``; what each means is in pyproject.toml):
collection stops with a usage error naming the tests without one, with several, or marked
``unit``/``flows`` while using a registry fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import registries
from tests.support.images import OciImage, make_oci_layout
from tests.support.registries import RegistryFixture

#: The test layers (markers registered in pyproject.toml); every test carries exactly one.
LAYERS = ("unit", "flows", "registry", "locust_run", "bench", "browser")
#: The in-process tier of ``./dev test --fast``: nothing outside the venv, no Locust subprocess.
FAST_LAYERS = ("unit", "flows")
REGISTRY_FIXTURES = frozenset({*(f"registry_{mode}" for mode in registries.MODES), "any_registry"})


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects: a selection checks every collected test
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run when a test has no layer marker, several, or a fast layer and a registry
    fixture: the tiers stay what their names say."""
    problems = []
    for item in items:
        layers = sorted({mark.name for mark in item.iter_markers() if mark.name in LAYERS})
        if not layers:
            problems.append(f"{item.nodeid}: no layer marker")
        elif len(layers) > 1:
            problems.append(f"{item.nodeid}: several layer markers ({', '.join(layers)})")
        elif layers[0] in FAST_LAYERS and REGISTRY_FIXTURES & set(item.fixturenames):
            used = ", ".join(sorted(REGISTRY_FIXTURES & set(item.fixturenames)))
            problems.append(f"{item.nodeid}: marked {layers[0]} but uses {used}: it is a registry test")
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise pytest.UsageError(
            "every test needs exactly one layer marker, one of "
            + ", ".join(LAYERS)
            + " (a module's `pytestmark = pytest.mark.unit`, or a mark per test where a file mixes"
            + " layers; see [tool.pytest.ini_options] markers in pyproject.toml):\n  "
            + "\n  ".join(shown)
        )


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
