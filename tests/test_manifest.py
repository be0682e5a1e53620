import json

import pytest

from regload import mediatypes as mt
from regload.digest import Digest, Tally
from regload.errors import DigestMismatch, ManifestError
from regload.manifest import Descriptor, ImageManifest, Index, Platform, Schema1Manifest, build_manifest, parse_manifest

pytestmark = pytest.mark.unit

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def manifest_doc(media_type=mt.OCI_MANIFEST):
    return {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": D1, "size": 10},
        "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": D2, "size": 20}],
    }


def test_image_manifest_keeps_bytes():
    raw = json.dumps(manifest_doc(), indent=7).encode()
    m = parse_manifest(raw, None)
    assert isinstance(m, ImageManifest)
    assert m.raw == raw and m.digest == Digest.of(raw)
    assert m.layers[0].size == 20


def test_parsed_manifests_are_kept_by_bytes_type_and_digest():
    raw = json.dumps(manifest_doc(), indent=3).encode()
    first = parse_manifest(raw, None)
    assert parse_manifest(raw, None) is first  # a load test's repeated pulls parse it once
    given = Digest.parse(D1)
    assert parse_manifest(raw, None, given).digest == given  # what was asked for, not the kept one
    assert parse_manifest(raw, mt.DOCKER_MANIFEST) is not first
    assert parse_manifest(raw, None).digest == Digest.of(raw)


def test_media_type_from_content_type_or_shape():
    doc = manifest_doc()
    del doc["mediaType"]
    assert parse_manifest(json.dumps(doc).encode(), mt.DOCKER_MANIFEST).media_type == mt.DOCKER_MANIFEST
    assert parse_manifest(json.dumps(doc).encode(), "application/json").media_type == mt.OCI_MANIFEST


def test_index_platform_selection():
    idx = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": D1,
                "size": 1,
                "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            },
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": D2,
                "size": 2,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
        ],
    }
    m = parse_manifest(json.dumps(idx).encode(), None)
    assert isinstance(m, Index)
    assert str(m.select(Platform.parse("linux/amd64")).digest) == D2
    assert str(m.select(Platform.parse("linux/arm64/v8")).digest) == D1
    with pytest.raises(ManifestError, match="linux/s390x"):
        m.select(Platform.parse("linux/s390x"))


def test_schema1_layers_oldest_first():
    doc = {
        "schemaVersion": 1,
        "name": "x",
        "tag": "t",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": D2}, {"blobSum": D1}],
        "history": [{"v1Compatibility": json.dumps({"id": "b"})}, {"v1Compatibility": json.dumps({"id": "a"})}],
    }
    m = parse_manifest(json.dumps(doc).encode(), mt.DOCKER_SCHEMA1_SIGNED)
    assert isinstance(m, Schema1Manifest)
    assert [str(d.digest) for d in m.layers] == [D1, D2]
    assert [h["id"] for h in m.history] == ["a", "b"]


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({"mediaType": "application/x-nonsense"}).encode(), "unsupported manifest media type"),
        (json.dumps({**manifest_doc(), "layers": "x"}).encode(), "no layers"),
        (
            json.dumps(
                {**manifest_doc(), "config": {"mediaType": "a", "digest": "md5:" + "a" * 32, "size": 1}}
            ).encode(),
            "unsupported digest algorithm",
        ),
        (
            json.dumps({**manifest_doc(), "config": {"mediaType": "a", "digest": D1, "size": -1}}).encode(),
            "no valid size",
        ),
        (json.dumps({**manifest_doc(), "config": {"mediaType": "a", "digest": D1}}).encode(), "no valid size"),
        (b" " * (4 * 1024 * 1024 + 1), "more than"),
    ],
)
def test_bad_manifests(raw, message):
    with pytest.raises(ManifestError, match=message):
        parse_manifest(raw, None)


def test_build_manifest_roundtrip():
    config = Descriptor(mt.DOCKER_CONFIG, Digest.parse(D1), 10)
    layer = Descriptor(mt.DOCKER_LAYER_GZIP, Digest.parse(D2), 20)
    raw = build_manifest(mt.DOCKER_MANIFEST, config, [layer])
    m = parse_manifest(raw, None)
    assert isinstance(m, ImageManifest) and m.config == config and m.layers == (layer,)
    assert build_manifest(mt.DOCKER_MANIFEST, config, [layer]) == raw


def test_verifier():
    data = b"hello"
    v = Tally(Digest.of(data), 5)
    v.update(data)
    v.check()
    v = Tally(Digest.of(data), 5)
    v.update(b"hellx")
    with pytest.raises(DigestMismatch, match="content has digest"):
        v.check()
    v = Tally(Digest.of(data), 4)
    with pytest.raises(DigestMismatch, match="more than"):
        v.update(data)
