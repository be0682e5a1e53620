"""``regload inspect --platform`` resolves an index as ``pull`` does, with the same checks: the
platform's manifest must have the size the index says, and must not be an index itself."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from regload import mediatypes as mt
from regload.digest import Digest
from tests.support.cli import regload
from tests.support.wrong_registry import WrongRegistry

pytestmark = pytest.mark.flows

CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
CONFIG_DIGEST = Digest.of(CONFIG)
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": str(CONFIG_DIGEST), "size": len(CONFIG)},
        "layers": [],
    }
).encode()


def index_of(target: bytes, media_type: str, size: int) -> bytes:
    entry = {
        "mediaType": media_type,
        "digest": str(Digest.of(target)),
        "size": size,
        "platform": {"os": "linux", "architecture": "amd64"},
    }
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [entry]}).encode()


@pytest.fixture(scope="module")
def served() -> Iterator[WrongRegistry]:
    with WrongRegistry() as registry:
        for repo in ("good", "wrong-size", "nested"):
            registry.manifest(repo, str(Digest.of(MANIFEST)), MANIFEST, mt.OCI_MANIFEST)
            registry.blob(repo, str(CONFIG_DIGEST), CONFIG)
        registry.manifest("good", "v1", index_of(MANIFEST, mt.OCI_MANIFEST, len(MANIFEST)), mt.OCI_INDEX)
        registry.manifest("wrong-size", "v1", index_of(MANIFEST, mt.OCI_MANIFEST, len(MANIFEST) + 1), mt.OCI_INDEX)
        inner = index_of(MANIFEST, mt.OCI_MANIFEST, len(MANIFEST))
        registry.manifest("nested", str(Digest.of(inner)), inner, mt.OCI_INDEX)
        registry.manifest("nested", "v1", index_of(inner, mt.OCI_INDEX, len(inner)), mt.OCI_INDEX)
        yield registry


def test_inspect_platform_of_a_good_index(served: WrongRegistry) -> None:
    run = regload("inspect", f"{served.host}/good:v1", "--platform", "linux/amd64", "--json")
    assert run.code == 0, run.output
    assert run.json["platformDigest"] == str(Digest.of(MANIFEST))
    assert run.json["config"]["digest"] == str(CONFIG_DIGEST)


@pytest.mark.parametrize(
    "repo, cause",
    [
        ("wrong-size", f"is {len(MANIFEST)} bytes, the index says {len(MANIFEST) + 1}"),
        ("nested", "for linux/amd64 is itself an index"),
    ],
)
def test_inspect_platform_refuses_what_pull_refuses(served: WrongRegistry, repo: str, cause: str) -> None:
    ref = f"{served.host}/{repo}:v1"
    pull = regload("pull", ref)
    inspect = regload("inspect", ref, "--platform", "linux/amd64")
    for run in (pull, inspect):
        assert run.code == 1, run.output
        assert cause in run.stderr and "Traceback" not in run.stderr
        assert run.stderr.count("\n") == 1  # one line naming the cause
    assert regload("inspect", ref).code == 0  # the index itself is fine to show
