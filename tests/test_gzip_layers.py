"""Synthetic gzip layers (regload.sources.gzip_layer): real gzip streams of valid tars, digests
and diff_ids right, sizes and ratios as asked, and digests that cost no pass over the layer."""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import math
import tarfile
import zlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from regload import mediatypes as mt
from regload.errors import SourceError, UsageError
from regload.locust.options import settings_from
from regload.sources import gzip_layer
from regload.sources.base import CHUNK
from regload.sources.gzip_layer import GzipLayer, check_ratio
from regload.sources.synthetic import SyntheticLayer, SyntheticSpec, parse_synthetic, synthetic_image_of

pytestmark = pytest.mark.unit

KiB, MiB = 1 << 10, 1 << 20


def blob_of(layer: GzipLayer) -> bytes:
    chunks = list(layer.open())
    assert all(0 < len(c) <= CHUNK for c in chunks)
    return b"".join(chunks)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_tar(raw: bytes, layer: GzipLayer) -> list[str]:
    """The entries of ``raw`` (a valid tar, read to its end-of-archive) in order, checked."""
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        members = tar.getmembers()
        for m in members:
            if m.isfile():
                data = tar.extractfile(m)
                assert data is not None and len(data.read()) == m.size
    names = [m.name for m in members]
    assert names[:2] == ["regload", "regload/c"]
    chunks = [n for n in names if n.startswith("regload/c/")]
    assert chunks == [f"regload/c/{k:06d}" for k in range(len(chunks))]
    assert all(m.size == CHUNK for m in members if m.name in chunks)
    assert names[-1] == f"regload/layer-{layer.index}-{layer.seed:016x}.bin"
    assert set(names) <= {"regload", "regload/c", "regload/f", names[-1], *chunks}
    assert raw.endswith(bytes(1024))
    return names


@pytest.mark.parametrize("size", [0, 1, 511, 1000, 4 * KiB, 100_000, MiB, 3 * MiB + 12345, 10 * MiB])
def test_blob_is_gzip_of_a_valid_tar_with_exact_digests(size: int) -> None:
    layer = GzipLayer(seed=7, index=2, target=size, ratio=2.6)
    desc = layer.descriptor()
    blob = blob_of(layer)
    assert desc.media_type == mt.OCI_LAYER_GZIP
    assert len(blob) == desc.size == layer.size
    assert sha(blob) == desc.digest.hex
    assert layer.known_descriptor() == desc
    raw = gzip.decompress(blob)
    assert sha(raw) == layer.diff_id().hex
    assert len(raw) == layer.tar_size
    assert raw == b"".join(layer.raw())
    check_tar(raw, layer)
    if size >= 4 * KiB:  # the size asked is the blob's, give or take the smallest filler member
        assert abs(desc.size - size) <= 512


def test_tiny_targets_give_the_smallest_layer() -> None:
    sizes = {GzipLayer(1, 1, n, 2.6).size for n in (0, 1, 100)}
    assert len(sizes) == 1 and 0 < sizes.pop() < 1024


@pytest.mark.parametrize("ratio", [2.6, 4.0])
def test_achieved_ratio_and_size_at_64_mib(ratio: float) -> None:
    target = 64 * MiB
    layer = GzipLayer(seed=3, index=1, target=target, ratio=ratio)
    assert abs(layer.size - target) <= 1024
    # Stream it (no 170 MB in memory): decompress member by member, hash both sides, read the tar.
    gz, tar_hash, tar_size = hashlib.sha256(), hashlib.sha256(), 0
    inflated = bytearray()
    for chunk in _gunzip(layer.open(), gz):
        tar_hash.update(chunk)
        tar_size += len(chunk)
        if len(inflated) < 4 * MiB:
            inflated += chunk
    assert gz.hexdigest() == layer.descriptor().digest.hex
    assert tar_hash.hexdigest() == layer.diff_id().hex
    assert tar_size == layer.tar_size
    achieved = tar_size / layer.size
    assert achieved == pytest.approx(ratio, rel=0.10)
    assert achieved == pytest.approx(ratio, rel=0.02)  # calibrated: well within the ±10 % asked
    # The first entries of the stream, as a tar reader sees them
    with tarfile.open(fileobj=io.BytesIO(bytes(inflated)), mode="r|") as t:
        first = [m.name for m in itertools.islice(t, 3)]
    assert first == ["regload", "regload/c", "regload/c/000000"]


def _gunzip(chunks: Iterator[bytes | memoryview], gz: Any) -> Iterator[bytes]:
    d = zlib.decompressobj(31)
    for chunk in chunks:
        gz.update(chunk)
        data = bytes(chunk)
        while data:
            out = d.decompress(data)
            if out:
                yield out
            if d.eof:
                data = d.unused_data
                d = zlib.decompressobj(31)
            else:
                data = b""
    assert not d.unconsumed_tail


@pytest.mark.parametrize("ratio", [1.05, 1.5, 10.0, 50.0])
def test_other_ratios(ratio: float) -> None:
    layer = GzipLayer(seed=1, index=1, target=int(16 * MiB / ratio), ratio=ratio)  # 16 MiB of tar
    blob = blob_of(layer)  # near 1, a member of content is a little over CHUNK: cut in views
    raw = gzip.decompress(blob)
    assert sha(raw) == layer.diff_id().hex and sha(blob) == layer.descriptor().digest.hex
    assert len(raw) / len(blob) == pytest.approx(ratio, rel=0.05)


def test_seeds_and_indexes_give_other_digests_same_seed_same_bytes() -> None:
    layers = [GzipLayer(seed, index, 300 * KiB, 2.6) for seed in (1, 2, -5) for index in (1, 2)]
    assert len({layer.descriptor().digest for layer in layers}) == len(layers)
    assert len({layer.diff_id() for layer in layers}) == len(layers)
    again = GzipLayer(2, 1, 300 * KiB, 2.6)
    assert blob_of(again) == blob_of(layers[2])
    assert again.descriptor() == layers[2].descriptor() and again.diff_id() == layers[2].diff_id()


def test_config_lists_the_uncompressed_digests() -> None:
    image = synthetic_image_of([0, 50 * KiB, 2 * MiB], seed=9, ratio=2.6)
    config = json.loads(image.config.data)
    assert [layer.media_type for layer in image.layers] == [mt.OCI_LAYER_GZIP] * 3
    diff_ids = [f"sha256:{sha(gzip.decompress(b''.join(layer.open())))}" for layer in image.layers]
    assert config["rootfs"]["diff_ids"] == diff_ids
    assert "gzip, ratio 2.6" in config["history"][1]["created_by"]
    assert image.layers[1].descriptor().digest.hex != diff_ids[1].removeprefix("sha256:")


def test_ratio_one_or_none_keeps_uncompressed_noise_layers() -> None:
    plain = synthetic_image_of([1000], seed=4)
    for ratio in (None, 1, 1.0):
        image = synthetic_image_of([1000], seed=4, ratio=ratio)
        assert isinstance(image.layers[0], SyntheticLayer)
        assert image.layers[0].descriptor() == plain.layers[0].descriptor()
        assert image.config.data == plain.config.data


@pytest.mark.parametrize("ratio", [0.5, 0.99, 50.5, 1000.0, math.nan, -2.6])
def test_bad_ratios_are_usage_errors(ratio: float) -> None:
    with pytest.raises(UsageError, match="gzip ratio must be from 1 to 50"):
        check_ratio(ratio)
    with pytest.raises(UsageError):
        synthetic_image_of([1000], seed=1, ratio=ratio)


def test_synthetic_spec_key() -> None:
    spec = parse_synthetic("synthetic:layers=3,size=10KiB,gzip=2.6")
    assert spec == SyntheticSpec(3, 10 * KiB, 0, 2.6)
    assert str(spec) == "synthetic:layers=3,size=10240,seed=0,gzip=2.6"
    assert parse_synthetic(str(spec)) == spec
    image = spec.image(seed=5)
    assert all(isinstance(layer, GzipLayer) and layer.seed == 5 for layer in image.layers)
    assert parse_synthetic("synthetic:gzip=1") == SyntheticSpec()
    assert parse_synthetic("synthetic:gzip=none") == SyntheticSpec()
    assert str(SyntheticSpec()) == "synthetic:layers=1,size=1048576,seed=0"
    for bad, why in (("gzip=0.5", "gzip ratio must be from 1 to 50"), ("gzip=fast", "is not a number")):
        with pytest.raises(SourceError, match=why):
            parse_synthetic(f"synthetic:{bad}")


def test_locust_option() -> None:
    def ratio(value: Any) -> float | None:
        return settings_from(SimpleNamespace(layer_gzip_ratio=value)).images.gzip_ratio

    assert ratio("") is None and ratio("0") is None and ratio("1") is None and ratio(None) is None
    assert ratio("2.6") == 2.6 and ratio(4) == 4.0
    for bad in ("0.5", "51", "x"):
        with pytest.raises(UsageError, match="--layer-gzip-ratio"):
            ratio(bad)


class _CountingSha256:
    """hashlib.sha256 that counts the bytes it hashes (over all instances and copies)."""

    hashed = 0

    def __init__(self, inner: Any = None) -> None:
        self._h = inner if inner is not None else hashlib.sha256()

    def update(self, data: bytes | memoryview) -> None:
        _CountingSha256.hashed += len(data)
        self._h.update(data)

    def copy(self) -> _CountingSha256:
        return _CountingSha256(self._h.copy())

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def test_one_gib_layer_descriptor_hashes_only_its_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real size: once the process has the shared states, a 1 GiB layer's digest and diff_id
    hash a few hundred bytes, not the layer (bytes counted, not timed)."""
    monkeypatch.setattr(gzip_layer, "_profiles", {})  # a fresh process's cache
    monkeypatch.setattr(gzip_layer, "hashlib", SimpleNamespace(sha256=_CountingSha256, shake_128=hashlib.shake_128))
    compressed = 0
    real_member = gzip_layer.member

    def counting_member(data: bytes | memoryview) -> bytes:
        nonlocal compressed
        compressed += len(data)
        return real_member(data)

    monkeypatch.setattr(gzip_layer, "member", counting_member)
    target = 1 << 30
    first = GzipLayer(seed=1, index=1, target=target, ratio=2.6)
    first.descriptor()  # the process's first layer of this size: builds the shared states once
    assert _CountingSha256.hashed > 3 * target  # both sides of the shared prefix, ~1 + 2.6 GiB
    _CountingSha256.hashed, compressed = 0, 0

    layer = GzipLayer(seed=2, index=1, target=target, ratio=2.6)
    desc, diff_id = layer.descriptor(), layer.diff_id()
    assert _CountingSha256.hashed < 4 * KiB  # its unique member, both sides
    assert compressed < 4 * KiB  # one member of ~1.6 KiB compressed for this layer
    assert abs(desc.size - target) <= 1024
    assert desc != first.descriptor() and diff_id != first.diff_id()

    # ... and it is the digest of the bytes open() yields (hashed here, by the test)
    _CountingSha256.hashed = 0
    check, n = hashlib.sha256(), 0
    for chunk in layer.open():
        check.update(chunk)
        n += len(chunk)
    assert _CountingSha256.hashed == 0  # sending hashes nothing either
    assert n == desc.size and check.hexdigest() == desc.digest.hex


def test_long_prefix_builds_yield_to_other_greenlets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the shared states of a new, large size calls time.sleep(0) now and then (a
    switch to other greenlets under gevent's patching), not once per chunk."""
    monkeypatch.setattr(gzip_layer, "_profiles", {})
    calls: list[float] = []
    monkeypatch.setattr(gzip_layer.time, "sleep", calls.append)
    layer = GzipLayer(seed=1, index=1, target=4 * MiB, ratio=10.0)  # ~40 chunk entries
    layer.descriptor()
    entries = layer.tar_size // CHUNK
    assert calls and set(calls) == {0}
    assert len(calls) == entries // gzip_layer._YIELD_EVERY
