"""Every entry of the bad-input corpus (``fixtures/bad/``) fed to ``regload``.

Each must end in one clear ``regload: error:`` line with the documented exit code (2 for bad
input from the user, 1 for a registry that serves wrong bytes or a hostile image), without a
traceback, and without writing anything outside the output the user named. Manifests are
served by a real HTTP server acting as a registry (``tests.support.wrong_registry``); tarballs
are pushed to, and hostile layers pushed through and pulled from, the real ``docker-registry``.

Every entry runs through ``regload.cli.main.main`` in this process: the console command's code,
with real sockets and files, at a few ms an entry where a new interpreter costs 0.4 s of CPU.
A sample of each kind also runs as the real ``regload`` command, and every hostile layer is
extracted by the real command.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from regload import mediatypes as mt
from regload.cli.main import main
from regload.manifest import MAX_MANIFEST_BYTES
from tests.support.cli import Run, assert_clean_failure, regload
from tests.support.images import make_layout_of_manifest, make_oci_layout_of_tars
from tests.support.registries import RegistryFixture, http_request
from tests.support.treecompare import snapshot_tree
from tests.support.wrong_registry import Served, WrongRegistry

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "bad"
ABSOLUTE_TARGETS = ("/tmp/regload-bad-input-absolute", "/tmp/regload-bad-input-member")

RunMany = Callable[[Sequence[Sequence[str]], Path], list[Run]]


@pytest.fixture(autouse=True)
def _no_absolute_target_left() -> None:
    """The corpus's absolute names point at fixed paths under /tmp; one left by another run (or
    by a past bug) must not fail every later test, so each test starts without them."""
    for target in ABSOLUTE_TARGETS:
        Path(target).unlink(missing_ok=True)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def as_commands(commands: Sequence[Sequence[str]], cwd: Path) -> list[Run]:
    """Run ``regload`` commands at once, in ``cwd``, each in a new interpreter."""
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        return list(pool.map(lambda args: regload(*args, cwd=cwd), commands))


@pytest.fixture
def in_process(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> RunMany:
    """Run argument vectors through ``main`` one after another, in ``cwd``, with an empty
    standard input. An exception other than ``SystemExit`` is a traceback: it fails the test."""

    def run(commands: Sequence[Sequence[str]], cwd: Path) -> list[Run]:
        monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        runs = []
        for argv in commands:
            try:
                code = main(list(argv))
            except SystemExit as e:  # argparse's own usage errors
                code = e.code if isinstance(e.code, int) else 1
            out = capsys.readouterr()
            runs.append(Run(code, out.out, out.err))
        return runs

    return run


# -- the corpus files ----------------------------------------------------------------------------


def _lines(name: str) -> list[tuple[int, str]]:
    """(line number, text) of the entries of a corpus list: no blank or comment-only lines."""
    out = []
    for number, line in enumerate((CORPUS / name).read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            out.append((number, line))
    return out


def _references() -> list[pytest.ParameterSet]:
    params = []
    for number, line in _lines("references.txt"):
        [reference] = shlex.split(line, comments=True)
        params.append(pytest.param(reference, id=f"references.txt:{number}"))
    return params


def _cli_vectors() -> list[pytest.ParameterSet]:
    params = []
    for number, line in _lines("cli-args.txt"):
        args, arrow, needle = line.partition(" => ")
        assert arrow and needle.strip(), f"cli-args.txt:{number}: expected 'ARGS => TEXT'"
        params.append(pytest.param(shlex.split(args), needle.strip(), id=f"cli-args.txt:{number}"))
    return params


@pytest.mark.unit
def test_readme_lists_every_corpus_file() -> None:
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    files = [p for p in CORPUS.rglob("*") if p.is_file() and p.name != "README.md" and "__pycache__" not in p.parts]
    missing = [str(f.relative_to(CORPUS)) for f in files if f"`{f.name}`" not in readme]
    assert not missing, f"not described in fixtures/bad/README.md: {missing}"


@pytest.mark.unit
def test_committed_tarballs_are_what_the_script_makes(tmp_path: Path) -> None:
    """``make_tarballs.py`` rebuilds ``tarballs/`` and ``layers/`` byte for byte, and nothing
    else is in those directories: the corpus cannot drift from its recipe."""
    done = subprocess.run(
        [sys.executable, str(CORPUS / "make_tarballs.py"), str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for folder in ("tarballs", "layers"):
        made = {p.name: p.read_bytes() for p in (tmp_path / folder).iterdir()}
        committed = {p.name: p.read_bytes() for p in (CORPUS / folder).iterdir()}
        assert sorted(made) == sorted(committed), folder
        changed = [name for name in made if made[name] != committed[name]]
        assert not changed, f"{folder}: run fixtures/bad/make_tarballs.py and commit: {changed}"
        assert all(len(data) <= 20 * 1024 for data in made.values()), folder


# -- references ----------------------------------------------------------------------------------


def check_reference(reference: str, run_many: RunMany, tmp_path: Path) -> None:
    for run in run_many([["pull", reference], ["push", "synthetic:layers=1,size=1KiB", reference]], tmp_path):
        assert_clean_failure(run, 2, "invalid reference")
        assert len(run.stderr.splitlines()) == 1, run.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.flows
@pytest.mark.parametrize("reference", _references())
def test_malformed_reference(reference: str, in_process: RunMany, tmp_path: Path) -> None:
    check_reference(reference, in_process, tmp_path)


@pytest.mark.flows
@pytest.mark.parametrize("reference", _references()[:4:3])
def test_malformed_reference_as_a_command(reference: str, tmp_path: Path) -> None:
    check_reference(reference, as_commands, tmp_path)


# -- command lines -------------------------------------------------------------------------------


def check_command_line(args: list[str], needle: str, run_many: RunMany, tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "full").mkdir(parents=True)
    (work / "full" / "x").write_text("x\n")
    (work / "a-file").write_text("not a tarball, not a certificate\n")
    before = snapshot_tree(tmp_path)
    [run] = run_many([[a.replace("{tmp}", str(work)) for a in args]], work)
    assert_clean_failure(run, 2, needle)
    assert "secret" not in run.output
    assert snapshot_tree(tmp_path) == before


@pytest.mark.flows
@pytest.mark.parametrize(("args", "needle"), _cli_vectors())
def test_bad_command_line(args: list[str], needle: str, in_process: RunMany, tmp_path: Path) -> None:
    check_command_line(args, needle, in_process, tmp_path)


# An argparse error, a UsageError, a synthetic spec and a bad source.
_CLI_SAMPLE = ("--format tarball", "--chunk-size 12XB", "synthetic:colour=blue", "{tmp}/a-file 127.0.0.1")


@pytest.mark.flows
@pytest.mark.parametrize(
    ("args", "needle"), [p for p in _cli_vectors() if any(w in " ".join(p.values[0]) for w in _CLI_SAMPLE)]
)
def test_bad_command_line_as_a_command(args: list[str], needle: str, tmp_path: Path) -> None:
    check_command_line(args, needle, as_commands, tmp_path)


# -- manifests served by a registry that serves wrong bytes --------------------------------------

OCI_CONFIG_SIZE = 233  # the config descriptor's size in the corpus manifests


@dataclass(frozen=True)
class BadManifest:
    """How the wrong registry serves a corpus manifest, and what regload must say about it.

    ``needle`` is in the error line of ``pull`` (exit 1); ``inspect_ok``: ``inspect`` reads the
    manifest only and rightly succeeds; ``layout_needle``: the error of ``push`` from an OCI
    layout holding the same manifest (exit 2; default ``needle``).
    """

    needle: str
    content_type: str | None = mt.OCI_MANIFEST
    inspect_ok: bool = False
    layout_needle: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    wrong_config: bool = False  # serve the config blob with other bytes of its size


MISSING_CONFIG = "config blob sha256:"  # a layout push then stops at the config the layout lacks
MANIFESTS: dict[str, BadManifest] = {
    "not-json.json": BadManifest("manifest is not valid JSON"),
    "truncated.json": BadManifest("manifest is not valid JSON"),
    "empty.json": BadManifest("manifest is not valid JSON"),
    "json-array.json": BadManifest("manifest is not a JSON object"),
    "nested-too-deeply.json": BadManifest("manifest is JSON nested too deeply"),
    "not-utf8.json": BadManifest("manifest is not valid JSON (UnicodeDecodeError"),
    "unknown-media-type.json": BadManifest(
        "unsupported manifest media type 'application/vnd.example.unknown+json'",
        "application/vnd.example.unknown+json",
    ),
    "index-media-type-on-a-manifest.json": BadManifest("index has no manifests list", mt.OCI_INDEX),
    "no-media-type.json": BadManifest(
        "manifest has no recognisable media type (Content-Type 'text/plain')", "text/plain"
    ),
    "missing-config.json": BadManifest("manifest config: descriptor is not an object"),
    "missing-layers.json": BadManifest("manifest has no layers list"),
    "layer-not-an-object.json": BadManifest("layer: descriptor is not an object"),
    "config-no-digest.json": BadManifest("manifest config: descriptor has no digest"),
    "layer-digest-md5.json": BadManifest("layer: unsupported digest algorithm 'md5'"),
    "layer-digest-short-hex.json": BadManifest("layer: invalid sha256 digest 'sha256:0123456789abcdef'"),
    "config-digest-sha512-of-sha256-length.json": BadManifest("manifest config: invalid sha512 digest"),
    "layer-size-negative.json": BadManifest("layer: descriptor has no valid size"),
    "layer-urls-not-a-list.json": BadManifest("HTTP 404 BLOB_UNKNOWN", inspect_ok=True, layout_needle=MISSING_CONFIG),
    "schema-version-3.json": BadManifest("unsupported schemaVersion 3"),
    "config-too-large.json": BadManifest(
        "is 10737418240 bytes, more than 67108864", inspect_ok=True, layout_needle="is 10737418240 bytes, too large"
    ),
    "wrong-config-bytes.json": BadManifest(
        "content has digest", inspect_ok=True, layout_needle=MISSING_CONFIG, wrong_config=True
    ),
    "docker-content-digest-mismatch.json": BadManifest(
        "Docker-Content-Digest sha256:000000000000 does not match its content",
        mt.DOCKER_MANIFEST,
        layout_needle=MISSING_CONFIG,
        headers=(("Docker-Content-Digest", "sha256:" + "0" * 64),),
    ),
    "index-no-manifests.json": BadManifest("index has no manifests list", mt.OCI_INDEX),
    "index-empty.json": BadManifest(
        "no manifest for platform linux/amd64 in the index (platforms: none)", mt.OCI_INDEX
    ),
    "index-entry-bad-digest.json": BadManifest("index entry: invalid sha256 digest 'sha256:zz'", mt.OCI_INDEX),
    "schema1-no-fslayers.json": BadManifest("schema 1 manifest has no fsLayers", mt.DOCKER_SCHEMA1_SIGNED),
    "schema1-history-not-objects.json": BadManifest(
        "schema 1 history entry has no valid v1Compatibility", mt.DOCKER_SCHEMA1_SIGNED
    ),
}
# Generated here rather than committed: one past the client's limit (MAX_MANIFEST_BYTES).
GENERATED = {
    "huge (generated)": BadManifest(f"is larger than {MAX_MANIFEST_BYTES} bytes", layout_needle="bytes, too large"),
}


def _huge_manifest() -> bytes:
    doc = json.loads((CORPUS / "manifests" / "wrong-config-bytes.json").read_bytes())
    doc["annotations"] = {"padding": "x" * (MAX_MANIFEST_BYTES + 1)}
    return json.dumps(doc).encode()


@pytest.mark.unit
def test_every_manifest_file_has_a_case() -> None:
    assert sorted(p.name for p in (CORPUS / "manifests").iterdir()) == sorted(MANIFESTS)


@pytest.fixture(scope="module")
def wrong_registry() -> Iterator[WrongRegistry]:
    with WrongRegistry() as registry:
        yield registry


def check_manifest(name: str, registry: WrongRegistry, run_many: RunMany, tmp_path: Path, via: str) -> None:
    case = MANIFESTS.get(name) or GENERATED[name]
    raw = (CORPUS / "manifests" / name).read_bytes() if name in MANIFESTS else _huge_manifest()
    repo, pushed_repo = f"bad-manifest/{via}/{_slug(name)}", f"bad-layout/{via}/{_slug(name)}"
    registry.manifest(repo, "v1", raw, case.content_type, case.headers)
    if case.wrong_config:
        config = json.loads(raw)["config"]
        assert config["size"] == OCI_CONFIG_SIZE
        registry.blob(repo, config["digest"], b"x" * OCI_CONFIG_SIZE)
    layout = tmp_path / "layout"
    make_layout_of_manifest(layout, raw, case.content_type or mt.OCI_MANIFEST)
    work = tmp_path / "work"
    work.mkdir()
    ref = f"{registry.host}/{repo}:v1"
    pull, pull_out, inspect, push = run_many(
        [
            ["pull", ref],
            ["pull", ref, "--output", str(work / "out")],
            ["inspect", ref, "--platform", "linux/amd64"],
            ["push", str(layout), f"{registry.host}/{pushed_repo}:v1"],
        ],
        work,
    )
    assert_clean_failure(pull, 1, f"{ref}: ", case.needle)
    assert_clean_failure(pull_out, 1, f"{ref}: ", case.needle)
    assert list(work.iterdir()) == []  # no output, no staging directory, nothing in the cwd
    if case.inspect_ok:
        assert inspect.code == 0, inspect.output
    else:
        assert_clean_failure(inspect, 1, case.needle)
    assert_clean_failure(push, 2, str(layout), case.layout_needle or case.needle)
    assert registry.requests_for(pushed_repo) == []  # refused before sending anything
    if not (case.inspect_ok or case.headers):
        # The manifest itself is the problem: nothing else was fetched.
        assert all("/manifests/" in path for _, path in registry.requests_for(repo))


@pytest.mark.flows
@pytest.mark.parametrize("name", [*MANIFESTS, *GENERATED])
def test_bad_manifest(name: str, wrong_registry: WrongRegistry, in_process: RunMany, tmp_path: Path) -> None:
    check_manifest(name, wrong_registry, in_process, tmp_path, "main")


@pytest.mark.flows
@pytest.mark.parametrize("name", ["nested-too-deeply.json", "wrong-config-bytes.json", "huge (generated)"])
def test_bad_manifest_as_commands(name: str, wrong_registry: WrongRegistry, tmp_path: Path) -> None:
    check_manifest(name, wrong_registry, as_commands, tmp_path, "command")


@pytest.mark.flows
def test_manifest_by_digest_served_with_other_bytes(wrong_registry: WrongRegistry, tmp_path: Path) -> None:
    """Pulled by digest, the registry answers with a well-formed manifest of another digest."""
    raw = (CORPUS / "manifests" / "wrong-config-bytes.json").read_bytes()
    asked = "sha256:" + hashlib.sha256(raw + b" ").hexdigest()
    wrong_registry.manifest("bad-manifest/by-digest", asked, raw, mt.OCI_MANIFEST)
    ref = f"{wrong_registry.host}/bad-manifest/by-digest@{asked}"
    for run in as_commands([["pull", ref, "--output", str(tmp_path / "out")], ["inspect", ref]], tmp_path):
        assert_clean_failure(run, 1, f"manifest {asked[:19]}: content has digest sha256:")
    assert list(tmp_path.iterdir()) == []


DEEP_JSON = b'{"errors": ' + b"[" * 5000 + b"]" * 5000 + b"}"  # past the JSON decoder's recursion limit


@pytest.mark.flows
def test_error_body_nested_too_deeply(wrong_registry: WrongRegistry, in_process: RunMany, tmp_path: Path) -> None:
    path = "/v2/bad-manifest/deep-error/manifests/v1"
    wrong_registry.route(path, Served(DEEP_JSON, "application/json", status=404))
    [run] = in_process([["pull", f"{wrong_registry.host}/bad-manifest/deep-error:v1"]], tmp_path)
    assert_clean_failure(run, 1, "HTTP 404")


@pytest.mark.flows
def test_tag_list_nested_too_deeply(wrong_registry: WrongRegistry, in_process: RunMany, tmp_path: Path) -> None:
    wrong_registry.route("/v2/bad-manifest/deep-tags/tags/list", Served(DEEP_JSON, "application/json"))
    [run] = in_process([["tags", f"{wrong_registry.host}/bad-manifest/deep-tags"]], tmp_path)
    assert_clean_failure(run, 1, "not a tag list")


# -- docker save tarballs pushed to the real registry --------------------------------------------

TARBALLS: dict[str, str | None] = {  # None: the control, which pushes
    "valid.tar": None,
    "truncated.tar": "truncated tar archive",
    "not-a-tar.tar": "not a tar archive (invalid header)",
    "empty.tar": "not a tar archive (empty file)",
    "gzip-compressed.tar.gz": "is gzip-compressed; docker save writes a plain tar: decompress it first",
    "oci-archive.tar": "no manifest.json: not a docker save tarball (an OCI archive?",
    "manifest-json-missing.tar": "no manifest.json: not a docker save tarball",
    "manifest-json-not-json.tar": "manifest.json is not valid JSON",
    "manifest-json-nested-too-deeply.tar": "manifest.json is not valid JSON",
    "manifest-json-empty-list.tar": "manifest.json is not a non-empty list of images",
    "manifest-json-no-layers.tar": "manifest.json image 1 lacks a Config name or a Layers list",
    "manifest-json-missing-layer.tar": "layer 1 missing/layer.tar named in manifest.json is not in the tarball",
    "manifest-json-missing-config.tar": "config missing.json named in manifest.json is not in the tarball",
    "manifest-json-host-paths.tar": "config /etc/passwd named in manifest.json is not in the tarball",
    "config-not-json.tar": ".json is not valid JSON",
    "config-no-diff-ids.tar": ".json has no rootfs.diff_ids list",
    "config-two-diff-ids-one-layer.tar": "manifest.json lists 1 layers but the config has 2 diff_ids",
    "layer-not-a-tar.tar": "/layer.tar): is not a tar archive",
    "layer-diff-id-mismatch.tar": "/layer.tar): content has digest sha256:",
    "member-dotdot.tar": "refusing member '../evil-member': its name leads out of the archive",
    "member-absolute.tar": "refusing member '/tmp/regload-bad-input-member': its name leads out of the archive",
    "member-symlink-escape-then-write.tar": "refusing member 'escape': it is a symlink to '/tmp', outside the archive",
    "member-hardlink-outside.tar": "refusing member 'passwd': it is a hard link to '/etc/passwd', outside the archive",
    "layer-is-symlink-outside.tar": "it is a symlink to '../../../../etc/passwd', outside the archive",
    "docker25-config-not-at-its-digest.tar": "does not match its digest (corrupt tarball)",
}


@pytest.mark.unit
def test_every_tarball_has_a_case() -> None:
    assert sorted(p.name for p in (CORPUS / "tarballs").iterdir()) == sorted(TARBALLS)


def _manifest_status(registry: RegistryFixture, repository: str, tag: str) -> int:
    accept = ", ".join(sorted(mt.IMAGE_MANIFESTS | mt.INDEXES))
    url = f"{registry.api_url}{repository}/manifests/{tag}"
    return http_request(url, method="HEAD", headers={"Accept": accept}).status


def check_tarball(name: str, registry: RegistryFixture, run_many: RunMany, tmp_path: Path, via: str) -> None:
    needle = TARBALLS[name]
    source = CORPUS / "tarballs" / name
    repo = f"bad-input/{via}/tarball-{_slug(name)}"
    [run] = run_many([["push", str(source), f"{registry.host}/{repo}:v1"]], tmp_path)
    if needle is None:
        assert run.code == 0, run.output
        assert _manifest_status(registry, repo, "v1") == 200
    else:
        assert_clean_failure(run, 2, str(source), needle)
        assert _manifest_status(registry, repo, "v1") == 404  # nothing was tagged
    assert list(tmp_path.iterdir()) == []
    assert not any(Path(p).exists() for p in ABSOLUTE_TARGETS)


@pytest.mark.registry
@pytest.mark.parametrize("name", sorted(TARBALLS))
def test_docker_save_tarball(name: str, registry_anon: RegistryFixture, in_process: RunMany, tmp_path: Path) -> None:
    check_tarball(name, registry_anon, in_process, tmp_path, "main")


@pytest.mark.registry
@pytest.mark.parametrize("name", ["valid.tar", "layer-not-a-tar.tar", "member-symlink-escape-then-write.tar"])
def test_docker_save_tarball_as_a_command(name: str, registry_anon: RegistryFixture, tmp_path: Path) -> None:
    check_tarball(name, registry_anon, as_commands, tmp_path, "command")


# -- hostile layers: pushed as images, pulled into a sentinel tree -------------------------------


@dataclass(frozen=True)
class HostileLayer:
    """``needle`` names the refused entry in the error of a rootfs pull (exit 1); None: the
    layer extracts (the control, and device nodes: made as root, skipped with a note otherwise)."""

    needle: str | None


LAYERS: dict[str, HostileLayer] = {
    "valid.tar": HostileLayer(None),
    "device-nodes.tar": HostileLayer(None),
    "dotdot-name.tar": HostileLayer("refusing entry '../../../evil-dotdot': '..' leads out of the root"),
    "dotdot-inside-name.tar": HostileLayer("refusing entry 'a/../../../../evil-dotdot-inside': '..' leads out"),
    "absolute-name.tar": HostileLayer("refusing entry '/tmp/regload-bad-input-absolute': absolute path"),
    "symlink-to-root-then-write.tar": HostileLayer(
        "refusing entry 'escape/tmp/regload-bad-input-absolute': path goes through symlink 'escape' -> '/'"
    ),
    "symlink-dotdot-then-write.tar": HostileLayer(
        "refusing entry 'escape/evil-through-symlink': path goes through symlink 'escape' -> '../../..'"
    ),
    "symlink-chain-then-write.tar": HostileLayer("refusing entry 'a/evil-through-chain': path goes through symlink"),
    "symlink-dotdot-then-mkdir.tar": HostileLayer("refusing entry 'escape/evil-dir'"),
    "hardlink-to-etc-passwd.tar": HostileLayer("refusing entry 'passwd': hard link target '/etc/passwd'"),
    "hardlink-dotdot.tar": HostileLayer("refusing entry 'precious': hard link target '../../../precious.txt'"),
    "hardlink-to-escaping-symlink.tar": HostileLayer(
        "refusing entry 'h': hard link target 's': it is a symlink to '../../../precious.txt', outside the root"
    ),
    "whiteout-dotdot-name.tar": HostileLayer("refusing entry '../../../.wh.precious.txt'"),
    "whiteout-of-dotdot.tar": HostileLayer("entry 'etc/.wh...': whiteout does not name an entry"),
    "whiteout-through-symlink.tar": HostileLayer("refusing entry 'escape/.wh.precious.txt': path goes through symlink"),
    "root-becomes-symlink.tar": HostileLayer("refusing entry './': it would change the type of the root directory"),
}


@pytest.mark.unit
def test_every_layer_has_a_case() -> None:
    assert sorted(p.name for p in (CORPUS / "layers").iterdir()) == sorted(LAYERS)


@pytest.fixture(scope="module")
def hostile_images(registry_anon: RegistryFixture, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each corpus layer as a one-layer image in the real registry, pushed once with ``regload
    push`` (through ``main``): name → reference."""
    root = tmp_path_factory.mktemp("hostile-layouts")
    refs = {}
    for name in LAYERS:
        layout = root / _slug(name)
        make_oci_layout_of_tars(layout, [(CORPUS / "layers" / name).read_bytes()])
        refs[name] = f"{registry_anon.host}/bad-input/layer-{_slug(name)}:v1"
        code = main(["push", str(layout), refs[name]])
        assert code == 0, name  # a registry stores any bytes: the pull must judge
    return refs


@pytest.mark.registry
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_hostile_layer(name: str, hostile_images: dict[str, str], in_process: RunMany, tmp_path: Path) -> None:
    """``--format rootfs`` by the real command, into ``TREE/work/out``: the corpus's ``../../..``
    from the rootfs being extracted (in ``TREE/work/.out.regload-XXXX/rootfs``) is ``TREE``,
    which holds ``precious.txt``. ``oci`` and ``docker-archive`` store the verified layer blob
    without extracting it."""
    case = LAYERS[name]
    ref = hostile_images[name]
    tree = tmp_path / "tree"
    (tree / "work").mkdir(parents=True)
    (tree / "precious.txt").write_text("precious\n")
    out = tree / "work" / "out"
    before = snapshot_tree(tree)
    [rootfs] = as_commands([["pull", ref, "--output", str(out), "--format", "rootfs"]], tree / "work")
    assert not any(Path(p).exists() for p in ABSOLUTE_TARGETS)
    assert (tree / "precious.txt").stat().st_nlink == 1
    if case.needle is None:
        assert rootfs.code == 0, rootfs.output
        assert "Traceback" not in rootfs.output
        assert sorted(p.name for p in (tree / "work").iterdir()) == ["out"]
        after = snapshot_tree(tree)
        assert {k: v for k, v in after.items() if not k.startswith("work/out")} == before
    else:
        assert_clean_failure(rootfs, 1, f"{ref}: layer sha256:", case.needle)
        assert snapshot_tree(tree) == before  # no output, no staging left, nothing escaped
    others = tmp_path / "others"
    others.mkdir()
    oci, archive = in_process(
        [
            ["pull", ref, "--output", str(others / "oci"), "--format", "oci"],
            ["pull", ref, "--output", str(others / "image.tar"), "--format", "docker-archive"],
        ],
        others,
    )
    assert oci.code == 0, oci.output
    assert archive.code == 0, archive.output
    assert sorted(p.name for p in others.iterdir()) == ["image.tar", "oci"]
    assert (others / "oci" / "index.json").is_file()


@pytest.mark.registry
def test_device_nodes_are_made_as_root_or_skipped_with_a_note(hostile_images: dict[str, str], tmp_path: Path) -> None:
    """Today's rule (``sinks/extract.py``): devices need root (and CAP_MKNOD); without, each is
    skipped and named on stderr. FIFOs need no privilege and are always made."""
    out = tmp_path / "out"
    run = regload("pull", hostile_images["device-nodes.tar"], "--output", str(out))
    assert run.code == 0, run.output
    assert (out / "run" / "fifo").is_fifo()
    null = out / "dev" / "null"
    if null.exists() or null.is_symlink():
        assert null.is_char_device() and (null.stat().st_rdev >> 8, null.stat().st_rdev & 0xFF) == (1, 3)
    else:
        assert "skipped device 'dev/null'" in run.stderr, run.stderr


@pytest.mark.registry
def test_the_valid_layer_extracts_as_described(hostile_images: dict[str, str], tmp_path: Path) -> None:
    """The corpus's control layer pulls into the tree it describes: the harness itself works."""
    out = tmp_path / "out"
    run = regload("pull", hostile_images["valid.tar"], "--output", str(out))
    assert run.code == 0, run.output
    assert (out / "hello.txt").read_text() == "hello from the bad-input corpus\n"
    assert (out / "etc" / "hostname").read_bytes() == b"bad-input\n"
    assert (out / "etc" / "hello-link").readlink() == Path("../hello.txt")
    assert (out / "etc" / "hello-copy").stat().st_ino == (out / "hello.txt").stat().st_ino
