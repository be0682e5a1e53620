"""The shared stream pieces: the digest tally, its iterator and file adapters, compression
sniffing and the bounded gzip decoder; and the error tree around digests and refusals."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from regload import ustar
from regload.compression import Gunzip, GunzipReader, sniff
from regload.digest import Digest, Tally
from regload.errors import (
    AuthError,
    DigestMismatch,
    InvalidDigest,
    ManifestError,
    PlainHTTPRefused,
    ProtocolError,
    RegistryError,
    RegloadError,
    UsageError,
)
from regload.schema1 import diff_id
from regload.sinks.docker_archive import TarWriter
from regload.streams import CHUNK, TallyReader, checked

pytestmark = pytest.mark.unit


def test_tally_hashes_counts_and_checks() -> None:
    data = b"hello world"
    t = Tally()
    for piece in (data[:5], memoryview(data)[5:]):
        t.update(piece)
    assert (t.size, t.digest()) == (len(data), Digest.of(data))
    t.check()  # nothing expected: never fails
    sha512 = Digest.of(data, "sha512")
    t = Tally(sha512, len(data), "config")
    t.update(data)
    t.check()
    assert t.digest() == sha512
    short = Tally(Digest.of(data), len(data) + 1, "blob")
    short.update(data)
    with pytest.raises(DigestMismatch, match=r"^blob sha256:[0-9a-f]{12}: got 11 bytes, expected 12$"):
        short.check()
    wrong = Tally(Digest.of(b"other"), None, "blob")
    wrong.update(data)
    with pytest.raises(DigestMismatch, match=r"content has digest sha256:[0-9a-f]{12}, expected sha256:"):
        wrong.check()


def test_checked_runs_the_checks_at_the_end_only() -> None:
    data = [b"ab", b"cd"]
    check = Tally(Digest.of(b"abcX"), 4)
    stream = checked(iter(data), check)
    assert next(stream) == b"ab" and next(stream) == b"cd"
    with pytest.raises(DigestMismatch):
        next(stream)


def test_tally_reader_hashes_what_is_read() -> None:
    data = os.urandom(3 * CHUNK + 5)
    reader = TallyReader(io.BytesIO(data))
    assert reader.read(10) == data[:10]
    reader.drain()
    assert reader.read(10) == b""
    assert (reader.tally.size, reader.tally.digest()) == (len(data), Digest.of(data))


def test_sniff() -> None:
    assert sniff(gzip.compress(b"x")) == "gzip"
    assert sniff(b"\x28\xb5\x2f\xfd....") == "zstd"
    assert sniff(b"\xfd7zXZ\x00") == "xz"
    assert sniff(b"BZh91AY") == "bzip2"
    assert sniff(bytes(512)) is None
    assert sniff(b"") is None


def _fail(reason: str) -> ProtocolError:
    return ProtocolError(f"layer x: {reason}")


def test_gunzip_skips_zero_padding_between_and_after_members() -> None:
    data = gzip.compress(b"one", mtime=0) + bytes(7) + gzip.compress(b"two", mtime=0) + bytes(3)
    g = Gunzip(_fail)
    assert b"".join(g.feed(data)) == b"onetwo"
    g.finish()
    with pytest.raises(ProtocolError, match="^layer x: invalid gzip data"):
        list(Gunzip(_fail).feed(gzip.compress(b"one") + b"garbage"))
    with pytest.raises(ProtocolError, match="^layer x: gzip data is truncated$"):
        Gunzip(_fail).finish()


@pytest.mark.parametrize("size", [1, 1000, CHUNK, 64 << 10])
def test_gunzip_reader_reads_any_sizes(size: int) -> None:
    content = os.urandom(100_000) + bytes(3 * CHUNK)
    reader = GunzipReader(io.BytesIO(gzip.compress(content, mtime=0)), _fail)
    got = bytearray()
    while piece := reader.read(size):
        assert len(piece) <= size
        got += piece
    assert got == content and reader.read(size) == b""
    whole = GunzipReader(io.BytesIO(gzip.compress(content, mtime=0)), _fail)
    assert whole.read(7) + whole.read() == content


def test_gunzip_reader_reports_truncation() -> None:
    reader = GunzipReader(io.BytesIO(gzip.compress(os.urandom(5000))[:-10]), _fail)
    with pytest.raises(ProtocolError, match="truncated"):
        reader.read()


def test_schema1_diff_id(tmp_path: Path) -> None:
    content = os.urandom(5000)
    plain, packed, broken = tmp_path / "plain", tmp_path / "packed", tmp_path / "broken"
    plain.write_bytes(content)
    packed.write_bytes(gzip.compress(content[:100]) + gzip.compress(content[100:]))
    broken.write_bytes(gzip.compress(content)[:-10])
    assert diff_id(plain, "layer a") == diff_id(packed, "layer b") == str(Digest.of(content))
    with pytest.raises(ProtocolError, match="^layer c: gzip data is truncated$"):
        diff_id(broken, "layer c")


def test_tar_writer_uses_ustar_headers() -> None:
    out = io.BytesIO()
    tar = TarWriter(out)
    tar.add_dir("d/")
    tar.add_bytes("d/a.json", b"{}")
    assert tar.add_stream("d/layer.tar", io.BytesIO(b"x" * 1000)) == 1000
    tar.close()
    raw = out.getvalue()
    assert raw[:512] == ustar.header("d/", directory=True, mode=0o755)
    assert raw.endswith(ustar.END) and len(raw) % 512 == 0
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        assert [(m.name, m.size, m.mode) for m in tf.getmembers()] == [
            ("d", 0, 0o755),
            ("d/a.json", 2, 0o644),
            ("d/layer.tar", 1000, 0o644),
        ]
        member = tf.extractfile("d/layer.tar")
        assert member is not None and member.read() == b"x" * 1000


def test_invalid_digest_is_a_manifest_error() -> None:
    for text in ("sha256:abc", "md5:" + "0" * 32, "nonsense", 5):
        with pytest.raises(InvalidDigest) as e:
            Digest.parse(text)  # type: ignore[arg-type]
        assert isinstance(e.value, ManifestError) and e.value.exit_code == 1


def test_plain_http_refused_is_a_local_refusal() -> None:
    refused = PlainHTTPRefused("GET token", "the token server http://a is plain HTTP")
    assert str(refused) == "GET token: the token server http://a is plain HTTP"
    assert (refused.endpoint, refused.detail) == ("GET token", "the token server http://a is plain HTTP")
    assert isinstance(refused, RegloadError) and refused.exit_code == 1
    assert not isinstance(refused, (RegistryError, AuthError, UsageError))
