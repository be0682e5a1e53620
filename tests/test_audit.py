"""``--audit-file`` (push, Locust) and ``regload verify``: nothing pushed is lost unnoticed.

Unit tests of the audit log and its reader, then end to end against real registries: images
pushed with ``--audit-file`` verify as intact; a deleted manifest or blob is reported missing, a
re-pointed tag different, a blob damaged on the registry's disk corrupt.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from regload.audit import AuditEntry, AuditFileError, AuditLog, read_audit_file
from regload.local_registry import LocalRegistry, free_port
from regload.reference import Reference, Registry
from tests.support.cli import Run, assert_clean_failure, image_ref, regload
from tests.support.locust_run import Locust, assert_clean, assert_secret_absent, headless, run_locust
from tests.support.registries import RegistryFixture, http_request

DIGEST = "sha256:" + "ab" * 32
LAYER_TYPES = ("application/vnd.oci.image.layer.v1.tar", "application/vnd.docker.image.rootfs.diff.tar")


# --- unit: the log and its reader -------------------------------------------------------------


@pytest.mark.unit
def test_audit_log_appends_one_json_line_per_image(tmp_path):
    path = tmp_path / "audit.jsonl"
    prefixed = Reference(Registry.from_url("http://127.0.0.1:5000/some/prefix"), "team/app", "v1")
    by_digest = Reference(Registry.from_url("https://registry.example:8443"), "app", None)
    log = AuditLog(path)
    assert not path.exists()  # opened at the first line only
    log.record(AuditEntry.pushed(prefixed, DIGEST, "application/vnd.oci.image.manifest.v1+json", 529))
    log.record(AuditEntry.pushed(by_digest.with_reference(DIGEST), DIGEST, "m", 7))
    log.close()

    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3
    first = json.loads(lines[0])
    assert first["reference"] == "127.0.0.1:5000/team/app:v1"
    assert first["registry"] == "http://127.0.0.1:5000/some/prefix"
    assert (first["repository"], first["tag"], first["digest"], first["size"]) == ("team/app", "v1", DIGEST, 529)
    assert first["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert isinstance(first["time"], float) and first["time"] > 1.7e9
    second = json.loads(lines[1])
    assert second["reference"] == f"registry.example:8443/app@{DIGEST}" and second["tag"] is None

    entries = read_audit_file(path)
    assert [e.reference for e in entries] == [first["reference"], second["reference"]]
    assert entries[0].target().registry.base_url == "http://127.0.0.1:5000/some/prefix"
    assert str(entries[1].target()) == f"registry.example:8443/app@{DIGEST}"

    # A second log on the same file appends after what is there.
    again = AuditLog(path)
    again.record(entries[0])
    again.close()
    assert len(read_audit_file(path)) == 3


@pytest.mark.unit
def test_a_line_without_registry_is_resolved_from_its_reference(tmp_path):
    path = tmp_path / "hand-written.jsonl"
    path.write_text(json.dumps({"reference": "localhost:5000/app:v2", "digest": DIGEST}) + "\n\n")
    (entry,) = read_audit_file(path)
    ref = entry.target()
    assert (ref.registry.base_url, ref.repository, ref.tag) == ("http://localhost:5000", "app", "v2")
    assert entry.target(plain_http=True).registry.base_url == "http://localhost:5000"
    assert entry.target(Registry.from_url("http://other:1/p")).registry.base_url == "http://other:1/p"


_WRITER = """
import sys
from regload.audit import AuditEntry, AuditLog
from regload.reference import Reference, Registry
log = AuditLog(sys.argv[1])
ref = Reference(Registry.from_url("http://127.0.0.1:5000"), "writer-" + sys.argv[2] + "/" + "x" * 200, "t")
for i in range(int(sys.argv[3])):
    log.record(AuditEntry.pushed(ref.with_reference(f"t{i}"), "sha256:" + "cd" * 32, "m", i))
"""


@pytest.mark.unit
def test_processes_appending_to_one_file_never_interleave_lines(tmp_path):
    # Lines longer than the 256 bytes of a small write, from 4 processes at once.
    path = tmp_path / "shared.jsonl"
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(n), "400"], cwd=Path(__file__).parents[1])
        for n in range(4)
    ]
    assert [w.wait(60) for w in writers] == [0, 0, 0, 0]
    entries = read_audit_file(path)  # every line parses
    assert len(entries) == 1600
    for n in range(4):
        mine = [e.tag for e in entries if e.repository and e.repository.startswith(f"writer-{n}/")]
        assert mine == [f"t{i}" for i in range(400)]


def _json(**fields: object) -> str:
    return json.dumps(fields)


REF = "localhost:5000/app:v1"
BAD_LINES = [
    ("{not json", "invalid JSON"),
    ('["a list"]', "a JSON object is expected"),
    (_json(digest=DIGEST), "no 'reference'"),
    (_json(reference=REF), "no 'digest'"),
    (_json(reference=REF, digest="sha256:123"), "invalid sha256 digest"),
    (_json(reference=REF, digest=DIGEST, size="12"), "'size' has the wrong type"),
    (_json(reference="localhost:5000/App:v1", digest=DIGEST), "lower case"),
    (_json(reference="r", digest=DIGEST, registry="http://h:1"), "without 'repository'"),
    (_json(reference="r", digest=DIGEST, registry="ftp://h", repository="r"), "invalid registry URL"),
]


@pytest.mark.unit
@pytest.mark.parametrize(("bad", "why"), BAD_LINES, ids=[why for _, why in BAD_LINES])
def test_reader_names_file_and_line_of_a_bad_line(tmp_path, bad, why):
    path = tmp_path / "audit.jsonl"
    good = json.dumps({"reference": "localhost:5000/app:v1", "digest": DIGEST})
    path.write_text(f"{good}\n{good}\n{bad}\n{good}\n")
    with pytest.raises(AuditFileError) as caught:
        read_audit_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:3: not an audit entry: "), message
    assert why in message and "\n" not in message


@pytest.mark.flows
def test_verify_of_a_bad_audit_file_exits_2_with_one_line(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_bytes(json.dumps({"reference": "localhost:5000/a:b", "digest": DIGEST}).encode() + b"\n\xff\xfe\n")
    assert_clean_failure(regload("verify", str(path)), 2, f"{path}:2:", "not UTF-8")
    path.write_text(_json(reference=REF, digest=DIGEST)[:-1] + "\n")
    assert_clean_failure(regload("verify", str(path)), 2, f"{path}:1:", "invalid JSON")
    assert_clean_failure(regload("verify", str(tmp_path / "absent")), 2, "cannot read the audit file", "absent")
    assert_clean_failure(regload("verify", str(tmp_path)), 2, "cannot read the audit file")
    assert_clean_failure(regload("verify", str(path), "--jobs", "0"), 2, "--jobs")


# --- end to end: regload push --audit-file, regload verify ----------------------------------


@pytest.fixture(scope="module")
def own_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFixture]:
    """A registry of this module only: its blobs get damaged on disk (deletes are enabled)."""
    registry = LocalRegistry(storage_dir=tmp_path_factory.mktemp("audit-registry")).start()
    assert registry.config.delete_enabled
    try:
        yield RegistryFixture("anon", registry)
    finally:
        registry.stop()


def push(registry: RegistryFixture, repo: str, tag: str, audit: Path | None, seed: int) -> dict:
    args = ["--audit-file", str(audit)] if audit else []
    run = regload(
        "push", f"synthetic:layers=2,size=6KiB,seed={seed}", image_ref(registry, repo, tag), "--json", *args,
        registry=registry,
    )  # fmt: skip
    assert run.code == 0, run.output
    return run.json


def verify(registry: RegistryFixture, audit: Path, *args: str) -> Run:
    return regload("verify", str(audit), *args, registry=registry)


def auth_headers(registry: RegistryFixture) -> dict[str, str]:
    auth = registry.basic_auth()
    return {"Authorization": auth} if auth else {}


def delete(registry: RegistryFixture, repo: str, what: str, digest: str) -> None:
    url = f"{registry.url}/v2/{repo}/{what}/{digest}"
    response = http_request(url, method="DELETE", headers=auth_headers(registry), context=None)
    assert response.status == 202, (url, response.status, response.body)


def layer_digest(pushed: dict) -> str:
    return next(b["digest"] for b in pushed["blobs"] if b["mediaType"] in LAYER_TYPES)


def damage_blob_on_disk(registry: RegistryFixture, digest: str) -> None:
    """Flip every byte of the blob's data file in the registry's storage: same size, other digest."""
    hexdigest = digest.split(":", 1)[1]
    blobs = Path(registry.registry.storage_dir, "docker/registry/v2/blobs/sha256")
    data = blobs / hexdigest[:2] / hexdigest / "data"
    data.write_bytes(bytes(b ^ 0xFF for b in data.read_bytes()))


def problem_lines(run: Run) -> dict[str, str]:
    """``reference: status: cause`` lines of a human verify output, by reference."""
    lines = [line for line in run.stdout.splitlines() if not line.startswith("verified ")]
    return {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in lines}


@pytest.mark.registry
def test_push_audit_verify_then_missing_different_corrupt(own_registry, tmp_path):
    registry = own_registry
    audit = tmp_path / "audit.jsonl"
    base = random.Random().randrange(1 << 40)
    names = [("audit/a", "one"), ("audit/b", "two"), ("audit/c", "three"), ("audit/d", "four")]
    pushed = [push(registry, repo, tag, audit, base + i) for i, (repo, tag) in enumerate(names)]

    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [line["reference"] for line in lines] == [f"{registry.host}/{r}:{t}" for r, t in names]
    assert [line["digest"] for line in lines] == [p["manifest_digest"] for p in pushed]
    assert all(
        line["registry"] == registry.url and line["mediaType"] == p["media_type"]
        for line, p in zip(lines, pushed, strict=True)
    )
    for line, (repo, tag) in zip(lines, names, strict=True):
        raw = http_request(f"{registry.url}/v2/{repo}/manifests/{tag}", headers={"Accept": line["mediaType"]})
        assert line["size"] == len(raw.body) > 0

    ok = verify(registry, audit)
    assert ok.code == 0, ok.output
    assert ok.stdout == "verified 4 images: 4 intact, 0 missing, 0 different/corrupt\n"
    report = verify(registry, audit, "--json", "--jobs", "2")
    assert report.code == 0, report.output
    assert report.json["ok"] is True
    assert report.json["summary"] == {
        "verified": 4, "intact": 4, "missing": 0, "different": 0, "corrupt": 0, "error": 0,
    }  # fmt: skip
    assert [i["status"] for i in report.json["images"]] == ["intact"] * 4

    # a: manifest deleted; b: tag overwritten by another image; c: a layer damaged on disk;
    # d: a layer blob unlinked from its repository.
    delete(registry, "audit/a", "manifests", pushed[0]["manifest_digest"])
    other = push(registry, "audit/b", "two", None, base + 100)
    damage_blob_on_disk(registry, layer_digest(pushed[2]))
    delete(registry, "audit/d", "blobs", layer_digest(pushed[3]))

    bad = verify(registry, audit)
    assert bad.code == 1, bad.output
    assert "Traceback" not in bad.output
    assert bad.stdout.endswith("verified 4 images: 0 intact, 2 missing, 2 different/corrupt\n"), bad.stdout
    problems = problem_lines(bad)
    refs = [f"{registry.host}/{r}:{t}" for r, t in names]
    assert set(problems) == set(refs), bad.stdout
    assert problems[refs[0]].startswith("missing: ") and "MANIFEST_UNKNOWN" in problems[refs[0]]
    assert problems[refs[1]] == f"different: the tag now points to {other['manifest_digest']}"
    assert problems[refs[2]].startswith("corrupt: ") and layer_digest(pushed[2])[:19] in problems[refs[2]]
    assert problems[refs[3]].startswith("missing: ") and "BLOB_UNKNOWN" in problems[refs[3]]

    report = verify(registry, audit, "--json")
    assert report.code == 1 and report.json["ok"] is False
    statuses = {i["reference"]: (i["status"], i["currentDigest"]) for i in report.json["images"]}
    assert statuses == {
        refs[0]: ("missing", None),
        refs[1]: ("different", other["manifest_digest"]),
        refs[2]: ("corrupt", pushed[2]["manifest_digest"]),
        refs[3]: ("missing", pushed[3]["manifest_digest"]),
    }


@pytest.mark.registry
def test_push_refuses_an_audit_file_it_cannot_write_before_pushing(registry_anon, tmp_path):
    missing_dir = tmp_path / "no-such-dir" / "audit.jsonl"
    spec = "synthetic:layers=1,size=1KiB,seed=5"
    run = regload("push", spec, image_ref(registry_anon, "audit/refused"), "--audit-file", str(missing_dir))
    assert_clean_failure(run, 2, "audit file", "not a writable directory")
    # Nothing was pushed.
    head = http_request(f"{registry_anon.url}/v2/audit/refused/manifests/latest", method="HEAD")
    assert head.status == 404


@pytest.mark.registry
def test_verify_with_credentials(registry_basic, tmp_path):
    registry = registry_basic
    audit = tmp_path / "audit.jsonl"
    base = random.Random().randrange(1 << 40)
    pushed = [push(registry, "audit/basic", f"t{i}", audit, base + i) for i in range(2)]

    ok = verify(registry, audit)
    assert ok.code == 0, ok.output
    assert ok.stdout.endswith("verified 2 images: 2 intact, 0 missing, 0 different/corrupt\n")

    delete(registry, "audit/basic", "manifests", pushed[1]["manifest_digest"])
    bad = verify(registry, audit)
    assert bad.code == 1, bad.output
    assert problem_lines(bad).keys() == {f"{registry.host}/audit/basic:t1"}
    assert bad.stdout.endswith("verified 2 images: 1 intact, 1 missing, 0 different/corrupt\n")

    # Without credentials nothing can be checked: one error line, exit 1.
    anonymous = regload("verify", str(audit))
    assert_clean_failure(anonymous, 1, f"{registry.host}/audit/basic:t", "HTTP 401")
    assert registry.password
    assert_secret_absent(
        [registry.password], [("audit file", audit.read_text()), ("verify", ok.output + bad.output + anonymous.output)]
    )


@pytest.mark.registry
def test_verify_through_a_path_prefix(registry_prefix, tmp_path):
    registry = registry_prefix
    audit = tmp_path / "audit.jsonl"
    base = random.Random().randrange(1 << 40)
    pushed = [push(registry, "audit/prefixed", f"t{i}", audit, base + i) for i in range(2)]
    first = json.loads(audit.read_text().splitlines()[0])
    assert first["reference"] == f"{registry.host}/audit/prefixed:t0"
    assert first["registry"] == registry.url and registry.url.endswith("/some/prefix")

    # The recorded base URL is all verify needs: no --registry given.
    ok = regload("verify", str(audit))
    assert ok.code == 0, ok.output
    assert ok.stdout.endswith("verified 2 images: 2 intact, 0 missing, 0 different/corrupt\n")

    delete(registry, "audit/prefixed", "manifests", pushed[0]["manifest_digest"])
    bad = regload("verify", str(audit), "--json")
    assert bad.code == 1, bad.output
    assert [i["status"] for i in bad.json["images"]] == ["missing", "intact"]
    assert all(i["registry"] == registry.url for i in bad.json["images"])


# --- Locust: PushUser --audit-file --------------------------------------------------------------


@pytest.mark.locust_run
@pytest.mark.parametrize("processes", [None, 2])
def test_locust_push_run_audit_file_matches_its_stats(registry_anon, tmp_path, processes):
    audit = tmp_path / "audit.jsonl"
    args = ["--audit-file", str(audit), "--repo-prefix", f"audit/locust-{processes or 1}"]
    if processes:
        port = str(free_port())
        args += ["--processes", str(processes), "--master-bind-port", port, "--master-port", port]
    users = 4 if processes else 3
    result = run_locust(
        headless(registry_anon.url, tmp_path / "run", *args, "PushUser", users=users, run_time="5s"),
        tmp_path,
        name="run",
        timeout=60,
    )
    assert_clean(result)
    # The exact count is in PREFIX.json, written at exit; the stats CSV is rewritten once a
    # second while the run goes on, so it may stop a few pushes short of the end.
    final = result.json_stats()[("PUSH", "image")]
    pushed = final["num_requests"] - final["num_failures"]
    assert pushed > 0
    row = result.row("PUSH", "image")
    assert int(row["Request Count"]) - int(row["Failure Count"]) <= pushed

    entries = read_audit_file(audit)  # every line parses
    assert len(entries) == pushed, (len(entries), final)
    assert len({e.reference for e in entries}) == pushed  # unique images, one line each
    assert all(e.registry == registry_anon.url and e.tag and e.tag.startswith("push-") for e in entries)

    run = regload("verify", str(audit), "--jobs", "8", timeout=300)
    assert run.code == 0, run.output
    assert run.stdout == f"verified {pushed} images: {pushed} intact, 0 missing, 0 different/corrupt\n"


@pytest.mark.locust_run
def test_locust_refuses_an_audit_file_it_cannot_write(registry_anon, tmp_path):
    bad = tmp_path / "no-such-dir" / "audit.jsonl"
    process = Locust(headless(registry_anon.url, tmp_path / "run", "--audit-file", str(bad), "PushUser"), tmp_path)
    try:
        code = process.wait(60)
    finally:
        process.kill()
    assert code == 2, process.output
    assert f"regload: error: cannot create the audit file {bad}" in process.stderr
    assert "Traceback" not in process.output
