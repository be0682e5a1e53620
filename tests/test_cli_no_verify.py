"""``regload pull --no-verify`` counts the layers' bytes without checking their digests, as the
Locust users' ``--no-verify`` does; the manifest and the config are still checked."""

from __future__ import annotations

import json

import pytest

from regload import mediatypes as mt
from regload.digest import Digest
from tests.support.cli import regload
from tests.support.wrong_registry import WrongRegistry

pytestmark = pytest.mark.flows

CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
LAYER = b"the layer the manifest names" * 100
SERVED = b"other bytes of the same length" + b"x" * (len(LAYER) - 30)


def manifest(config: bytes, layer: bytes) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": str(Digest.of(config)), "size": len(config)},
            "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": str(Digest.of(layer)), "size": len(layer)}],
        }
    ).encode()


def test_no_verify_counts_what_a_verified_pull_refuses(tmp_path):
    assert len(SERVED) == len(LAYER)
    with WrongRegistry() as registry:
        registry.manifest("app", "v1", manifest(CONFIG, LAYER), mt.OCI_MANIFEST)
        registry.blob("app", str(Digest.of(CONFIG)), CONFIG)
        registry.blob("app", str(Digest.of(LAYER)), SERVED)  # not what its digest says
        ref = f"{registry.host}/app:v1"
        verified = regload("pull", ref)
        assert verified.code == 1 and "content has digest" in verified.stderr, verified.output
        counted = regload("pull", ref, "--no-verify", "--json")
        assert counted.code == 0, counted.output
        assert counted.json["bytes"] == len(CONFIG) + len(SERVED)
        refused = regload("pull", ref, "--no-verify", "--output", str(tmp_path / "out"))
        assert refused.code == 2 and "cannot write an --output" in refused.stderr, refused.output
        assert list(tmp_path.iterdir()) == []
        # The config is checked whatever the flag says.
        registry.blob("app", str(Digest.of(CONFIG)), CONFIG[::-1])
        config_bad = regload("pull", ref, "--no-verify")
        assert config_bad.code == 1 and "content has digest" in config_bad.stderr, config_bad.output
