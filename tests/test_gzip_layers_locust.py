"""``--layer-gzip-ratio``: a headless Locust run whose PushUsers push gzip synthetic layers to the
real docker-registry; every image it recorded verifies intact and its layers are gzip streams
compressing by about the ratio."""

from __future__ import annotations

import gzip
import json

import pytest

from regload import mediatypes as mt
from tests.support.cli import regload
from tests.support.locust_run import headless, run_locust
from tests.support.skopeo import run_skopeo

pytestmark = pytest.mark.locust_run


def test_push_user_pushes_gzip_layers(registry_anon, tmp_path) -> None:
    audit = tmp_path / "audit.jsonl"
    args = ["--layer-gzip-ratio", "4", "--push-layer-size", "300KiB", "--audit-file", str(audit), "PushUser"]
    result = run_locust(
        headless(registry_anon.url, tmp_path / "run", *args, users=2, run_time="5s"), tmp_path, name="run", timeout=60
    )
    assert result.code == 0, result.output[-4000:]
    assert int(result.row("PUSH", "image")["Request Count"]) > 0
    assert int(result.row("PUSH", "image")["Failure Count"]) == 0
    verify = regload("verify", str(audit), "--json")
    assert verify.code == 0 and verify.json["ok"], verify.output
    entry = json.loads(audit.read_text().splitlines()[0])
    ref = entry["reference"].split("/", 1)[1]  # repository:tag (or @digest) in this registry
    manifest = json.loads(
        run_skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry_anon.skopeo_host}/{ref}")
    )
    assert [layer["mediaType"] for layer in manifest["layers"]] == [mt.OCI_LAYER_GZIP] * 2
    repo = ref.split(":")[0].split("@")[0]
    for layer in manifest["layers"]:
        blob = regload_blob(registry_anon.url, repo, layer["digest"])
        assert abs(len(blob) - 300 * 1024) <= 1024
        assert len(gzip.decompress(blob)) / len(blob) == pytest.approx(4, rel=0.1)


def regload_blob(base: str, repository: str, digest: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(f"{base}/v2/{repository}/blobs/{digest}", timeout=30) as response:
        return response.read()
