"""Property tests: every parser of outside input fails only with regload's own errors.

References, registry URLs, ``WWW-Authenticate`` challenges, manifests, digests, platforms, sizes,
synthetic specs, ``-H`` headers and layer entry names are read from users and registries. On any
text or bytes each parser either returns a value that keeps its invariants or raises the one
error class a caller turns into a clean one-line message (``InvalidReference``/``UsageError``,
``ManifestError``, ``SourceError``); anything else would reach the user as a traceback. The
reference and challenge properties of ``tests/test_protocol.py`` are not repeated here.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import string
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from regload import mediatypes as mt
from regload.auth import parse_challenges
from regload.digest import Digest
from regload.errors import InvalidReference, ManifestError, SourceError, UsageError
from regload.manifest import ImageManifest, Index, Platform, Schema1Manifest, parse_manifest
from regload.options.groups import headers as _headers
from regload.reference import _PATH_RE, _TAG_RE, Registry, parse_reference, parse_repository
from regload.sinks.safetree import Refused, split_name, symlink_escapes
from regload.sources.synthetic import parse_synthetic
from regload.units import parse_size

pytestmark = pytest.mark.unit

PROPERTY = settings(
    max_examples=200, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
DEEP_JSON = b"[" * 5000 + b"]" * 5000  # past the JSON decoder's recursion limit

# -- references and registry URLs ----------------------------------------------------------------

_ref_chars = st.sampled_from(list(string.ascii_lowercase + string.digits + "._-/:@ ") + ["A", "é", "\n", "\x00"])
_ref_like = st.text(_ref_chars, max_size=40)


@PROPERTY
@given(st.one_of(st.text(max_size=60), _ref_like))
@example("app:" + "x" * 129)  # a tag one past the limit
@example("a" * 256)  # a name one past the limit
@example(":tag")
@example("@sha256:" + "0" * 64)
def test_parse_reference_with_a_registry_raises_only_invalid_reference(text: str) -> None:
    """With ``--registry``, REFERENCE is ``repo[:tag][@digest]``: the same contract, and the
    whole text is the repository path (no host is split off)."""
    registry = Registry("http://127.0.0.1:5000/prefix")
    try:
        ref = parse_reference(text, registry=registry)
    except InvalidReference as e:
        assert "\n" not in str(e) and len(str(e)) < 400
        return
    assert ref.registry == registry
    assert _PATH_RE.fullmatch(ref.repository) and len(ref.repository) <= 255
    assert ref.tag is None or _TAG_RE.fullmatch(ref.tag)


@PROPERTY
@given(st.one_of(st.text(max_size=60), _ref_like))
def test_parse_repository_raises_only_invalid_reference(text: str) -> None:
    try:
        ref = parse_repository(text)
    except InvalidReference:
        return
    assert ref.tag is None and ref.digest is None
    assert _PATH_RE.fullmatch(ref.repository)


_url_like = st.builds(
    lambda scheme, host, port, path: f"{scheme}{host}{port}{path}",
    st.sampled_from(["http://", "https://", "ftp://", "", "http:/"]),
    st.sampled_from(["127.0.0.1", "[::1]", "registry.example", "", "u:p@h", "[:", "h h"]),
    st.one_of(st.just(""), st.integers(-5, 70000).map(lambda p: f":{p}"), st.sampled_from([":", ":x", ":٣"])),
    st.sampled_from(["", "/", "/v2", "/v2/", "/repository/docker", "?q=1", "#f", "/%zz"]),
)


@PROPERTY
@given(st.one_of(_url_like, st.text(max_size=40)))
@example("http://127.0.0.1:99999")
@example("http://127.0.0.1:0")
def test_registry_url_is_usable_or_refused(text: str) -> None:
    """``--registry URL``: refused with ``InvalidReference``, or a base URL whose port and
    host a transport can use (urllib raises ValueError on a port past 65535)."""
    try:
        registry = Registry.from_url(text)
    except InvalidReference:
        return
    parts = urlsplit(registry.base_url)
    assert parts.scheme in ("http", "https") and parts.hostname
    assert parts.port is None or 1 <= parts.port <= 65535
    assert not registry.base_url.endswith(("/", "/v2"))


@PROPERTY
@given(
    st.lists(st.from_regex(r"[a-z0-9]+(?:[._-][a-z0-9]+)?", fullmatch=True), min_size=1, max_size=3),
    st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)),
)
def test_reference_with_a_registry_round_trips(components: list[str], tag: str | None) -> None:
    path = "/".join(components)
    registry = Registry("http://127.0.0.1:5000/some/prefix")
    ref = parse_reference(path + (f":{tag}" if tag else ""), registry=registry)
    assert (ref.repository, ref.tag) == (path, tag or "latest")
    assert ref.manifest_url() == f"http://127.0.0.1:5000/some/prefix/v2/{path}/manifests/{tag or 'latest'}"


# -- WWW-Authenticate ----------------------------------------------------------------------------

_header_text = st.text(
    st.one_of(st.characters(codec="utf-8", exclude_categories=("Cs",)), st.sampled_from(list(',="\\ \t'))),
    max_size=80,
)
_TCHARS = set(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~/:")


@PROPERTY
@given(st.lists(_header_text, max_size=3))
@example(['Bearer realm="a", , ,service="b",,', 'Basic realm="x\\'])
@example(["Bearer realm==x", "==", '"', ",,,", "Bearer\x00realm=x"])
def test_parse_challenges_never_raises_on_several_header_values(values: list[str]) -> None:
    """Any list of header values: challenges whose scheme and parameter names are tokens."""
    for challenge in parse_challenges(values):
        assert challenge.scheme and set(challenge.scheme) <= _TCHARS and challenge.scheme == challenge.scheme.lower()
        for key, value in challenge.params:
            assert key and set(key) <= _TCHARS and key == key.lower()
            assert isinstance(value, str)


_scheme = st.text(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1, max_size=8)
_token_value = st.text(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~/:", min_size=1, max_size=12)
_quoted_value = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from(list(',="\\ =')), max_size=20
)
# A value either bare (a token) or quoted (anything, with '"' and '\\' escaped).
_param_value = st.one_of(_token_value.map(lambda v: (v, v)), _quoted_value.map(lambda v: (_quote(v), v)))
_params = st.lists(st.tuples(_scheme, _param_value), max_size=4, unique_by=lambda kv: kv[0].lower())
_separator = st.sampled_from([",", ", ", " ,", ",,", ", , "])


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@PROPERTY
@given(st.lists(st.lists(st.tuples(_scheme, _params), min_size=1, max_size=3), min_size=1, max_size=3), _separator)
@example([[("Bearer", [("realm", ('"https://auth/token?a=1,b=2"', "https://auth/token?a=1,b=2"))])]], ", , ")
def test_challenge_lists_round_trip_across_header_values(
    values: list[list[tuple[str, list[tuple[str, tuple[str, str]]]]]], separator: str
) -> None:
    """RFC 9110 §11.6.1 and §5.6.1: bare and quoted values, empty list elements, and several
    ``WWW-Authenticate`` fields, whose challenges add up in order."""
    headers = [
        separator.join(
            scheme + (" " + separator.join(f"{k}={wire}" for k, (wire, _) in params) if params else "")
            for scheme, params in challenges
        )
        for challenges in values
    ]
    parsed = parse_challenges(headers)
    expected = [
        (scheme.lower(), tuple((k.lower(), plain) for k, (_, plain) in params))
        for challenges in values
        for scheme, params in challenges
    ]
    assert [(c.scheme, c.params) for c in parsed] == expected


def test_challenge_parameters_may_have_whitespace_around_the_equals_sign() -> None:
    [challenge] = parse_challenges(['Bearer realm = "https://auth/token", service= "reg"'])
    assert challenge.params == (("realm", "https://auth/token"), ("service", "reg"))


# -- manifests -----------------------------------------------------------------------------------

_json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=10)
)
_json = st.recursive(
    _json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)
_DIGESTS = ["sha256:" + "a" * 64, "sha512:" + "b" * 128, "md5:" + "c" * 32, "sha256:abc", "sha256:" + "A" * 64, ""]
_digest_value = st.one_of(st.sampled_from(_DIGESTS), _json)
_media_types = st.one_of(
    st.sampled_from(sorted(mt.IMAGE_MANIFESTS | mt.INDEXES | mt.SCHEMA1) + [mt.OCI_LAYER_GZIP, "", "text/plain"]),
    _json,
)


def _maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(values, _json)


_descriptor = st.fixed_dictionaries(
    {},
    optional={
        "mediaType": _media_types,
        "digest": _digest_value,
        "size": _maybe(st.integers(-3, 2**40)),
        "platform": _maybe(st.fixed_dictionaries({}, optional={"os": _maybe(st.just("linux")), "architecture": _json})),
        "urls": _json,
        "annotations": _json,
    },
)
_v1_compat = st.one_of(_json.map(json.dumps), st.just('{"id":"x"}'), st.just("[" * 3000 + "]" * 3000))
_manifest_doc = st.fixed_dictionaries(
    {},
    optional={
        "schemaVersion": st.one_of(st.sampled_from([1, 2, 3, "2", True]), _json),
        "mediaType": _media_types,
        "config": _maybe(_descriptor),
        "layers": _maybe(st.lists(_maybe(_descriptor), max_size=3)),
        "manifests": _maybe(st.lists(_maybe(_descriptor), max_size=3)),
        "fsLayers": _maybe(st.lists(_maybe(st.fixed_dictionaries({"blobSum": _digest_value})), max_size=3)),
        "history": _maybe(st.lists(_maybe(st.fixed_dictionaries({"v1Compatibility": _v1_compat})), max_size=3)),
        "signatures": _json,
        "architecture": _json,
    },
)
_content_type = st.one_of(st.none(), _media_types.filter(lambda v: isinstance(v, str)), st.text(max_size=20))


def _check_parsed(raw: bytes, content_type: str | None) -> None:
    """``parse_manifest`` raises ``ManifestError`` only; what it returns keeps the exact bytes."""
    try:
        manifest = parse_manifest(raw, content_type)
    except ManifestError as e:
        assert "\n" not in str(e)
        return
    assert manifest.raw == raw
    if isinstance(manifest, ImageManifest):
        assert manifest.media_type in mt.IMAGE_MANIFESTS and manifest.digest == Digest.of(raw)
        assert all(d.size >= 0 for d in (manifest.config, *manifest.layers))
    elif isinstance(manifest, Index):
        assert manifest.media_type in mt.INDEXES and manifest.digest == Digest.of(raw)
    else:
        assert isinstance(manifest, Schema1Manifest) and manifest.layers


@PROPERTY
@given(st.binary(max_size=200), _content_type)
@example(DEEP_JSON, None)
@example(b'{"mediaType": "' + mt.OCI_INDEX.encode() + b'", "manifests": ' + DEEP_JSON + b"}", None)
@example(b"\xff\xfe{}", mt.OCI_MANIFEST)
def test_parse_manifest_on_arbitrary_bytes(raw: bytes, content_type: str | None) -> None:
    _check_parsed(raw, content_type)


@PROPERTY
@given(_json, _content_type)
def test_parse_manifest_on_arbitrary_json(doc: Any, content_type: str | None) -> None:
    _check_parsed(json.dumps(doc).encode(), content_type)


@PROPERTY
@given(_manifest_doc, _content_type)
@example({"schemaVersion": 1, "fsLayers": [{"blobSum": _DIGESTS[0]}], "history": [{"v1Compatibility": "[]"}]}, None)
@example({"mediaType": mt.OCI_MANIFEST, "config": {}, "layers": [], "schemaVersion": 2, "urls": 5}, None)
def test_parse_manifest_on_manifest_shaped_json(doc: dict[str, Any], content_type: str | None) -> None:
    """Near-valid manifests, indexes and schema 1 documents with fields missing or of the
    wrong type, as a broken registry or a hand-made image would serve them."""
    _check_parsed(json.dumps(doc).encode(), content_type)


# -- small values users type ---------------------------------------------------------------------


@PROPERTY
@given(st.one_of(st.text(max_size=140), st.sampled_from(_DIGESTS)))
def test_digest_parse_raises_only_manifest_error_and_round_trips(text: str) -> None:
    try:
        digest = Digest.parse(text)
    except ManifestError:
        return
    assert str(digest) == text and Digest.parse(str(digest)) == digest
    assert len(digest.hex) == hashlib.new(digest.algorithm).digest_size * 2


@PROPERTY
@given(st.text(max_size=30))
def test_platform_parse_raises_only_manifest_error(text: str) -> None:
    try:
        platform = Platform.parse(text)
    except ManifestError:
        return
    assert str(platform) == text


@PROPERTY
@given(st.one_of(st.text(max_size=30), st.from_regex(r"\s*[0-9]{1,400}(\.[0-9]*)?\s*[KMGkmgiB]{0,3}", fullmatch=True)))
@example("9" * 400)  # overflows a float
@example("1e3")
def test_parse_size_raises_only_usage_error(text: str) -> None:
    try:
        size = parse_size(text)
    except UsageError as e:
        assert "\n" not in str(e)
        return
    assert isinstance(size, int) and size >= 0


@PROPERTY
@given(
    st.one_of(
        st.text(max_size=40).map(lambda t: "synthetic:" + t),
        st.lists(
            st.tuples(st.sampled_from(["layers", "size", "seed", "x", ""]), st.text("0123456789-KiMB.x ", max_size=6)),
            max_size=4,
        ).map(lambda kv: "synthetic:" + ",".join(f"{k}={v}" for k, v in kv)),
    )
)
@example("synthetic:size=" + "9" * 400)
def test_parse_synthetic_raises_only_source_error(spec: str) -> None:
    try:
        parsed = parse_synthetic(spec)
    except SourceError:
        return
    assert parsed.layers >= 1 and parsed.size >= 0


@PROPERTY
@given(st.lists(st.text(max_size=30), max_size=3))
def test_header_option_raises_only_usage_error(values: list[str]) -> None:
    """``-H 'Name: value'``: no name or value that could split a request line gets through."""
    try:
        headers = _headers(values)
    except UsageError:
        return
    for name, value in headers:
        assert name and not any(c in name for c in " \t\r\n:")
        assert "\r" not in value and "\n" not in value


# -- layer entry names ---------------------------------------------------------------------------

_name = st.lists(st.sampled_from(["a", "b", "/", ".", "..", "/..", "../", "./"]), max_size=8).map("".join)


@PROPERTY
@given(_name)
def test_split_name_never_leaves_the_root(name: str) -> None:
    """A tar entry name is refused or becomes plain components (no '', '.', '..', '/')."""
    try:
        parts = split_name(name)
    except Refused:
        normalized = posixpath.normpath(name) if name else "."
        assert name.startswith("/") or normalized == ".." or normalized.startswith("../")
        return
    assert all(p and p not in (".", "..") and "/" not in p for p in parts)
    assert "/".join(parts) == posixpath.normpath("/" + name).lstrip("/")


@PROPERTY
@given(st.lists(st.sampled_from(["a", "b", "c"]), max_size=3), _name)
def test_symlink_escapes_agrees_with_path_normalization(link_dir: list[str], target: str) -> None:
    """A target escapes exactly when ``normpath`` of it, seen from the link's directory under
    a root named ``R`` (a name no target contains, so a path that left cannot come back),
    ends outside ``/R``."""
    resolved = posixpath.normpath(posixpath.join("/R", *link_dir, target))
    assert symlink_escapes(link_dir, target) == (resolved != "/R" and not resolved.startswith("/R/"))
