"""Registry traces in the IBM format: reading (incrementally, with clear errors), the replay
plan's mapping, ``regload trace stats`` and ``regload trace synth``."""

from __future__ import annotations

import gzip
import io
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from regload.cli.trace import stats_lines
from regload.errors import UsageError
from regload.locust.options import settings_from
from regload.workload.popularity import Zipf
from regload.workload.sizes import parse_size_distribution
from regload.workload.trace import records as records_module
from regload.workload.trace.plan import MAX_MANIFEST, TraceBlob, TracePlan, manifest_for, repository_name, tag_name
from regload.workload.trace.records import Window, iter_json_array, load_trace, parse_uri
from regload.workload.trace.replay import Replay, replay_record
from regload.workload.trace.stats import percentile, trace_stats
from regload.workload.trace.synth import SynthSpec, parse_mix, synth_records, write_trace
from tests.support.cli import regload
from tests.support.fake_registry import FakeRegistry

pytestmark = pytest.mark.unit

REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


def record(ms: int, method: str, uri: str, status: int = 200, written: int = 0, **extra: object) -> dict[str, object]:
    return {
        "timestamp": f"2017-06-20T00:00:{ms // 1000:02d}.{ms % 1000:03d}Z",
        "http.request.method": method,
        "http.request.uri": uri,
        "http.request.duration": 0.01,
        "http.response.status": status,
        "http.response.written": written,
        "http.request.remoteaddr": "10.0.0.1",
        "http.request.useragent": "docker/1.12",
        "host": "h",
        "id": "x",
        **extra,
    }


def write(path: Path, items: list[dict[str, object]]) -> str:
    path.write_text(json.dumps(items))
    return str(path)


def test_uris_name_a_repository_a_kind_and_an_object():
    assert parse_uri("v2/u1/r1/manifests/t1") == ("u1/r1", "manifest", "t1")
    assert parse_uri("/v2/a/b/c/blobs/d1?x=1") == ("a/b/c", "blob", "d1")
    # Upload sessions, as the registry logs them: the commit (PUT) and PATCHes name the session.
    assert parse_uri("v2/u/r/blobs/uploads/abc") == ("u/r", "upload", "abc")
    assert parse_uri("/v2/r/blobs/uploads/?mount=x") == ("r", "upload", "")  # the POST that opens one
    assert parse_uri("v2/u/r/tags/list") is None
    assert parse_uri("v2/") is None and parse_uri("v1/u/r/manifests/t") is None


def test_a_trace_keeps_successful_gets_and_puts_of_manifests_and_blobs(tmp_path):
    path = write(
        tmp_path / "t.json",
        [
            record(2000, "GET", "v2/u/r/blobs/b1", written=500),
            record(0, "GET", "v2/u/r/manifests/t1", written=1200),
            record(500, "HEAD", "v2/u/r/manifests/t1"),
            record(600, "GET", "v2/u/r/blobs/b2", status=404),
            record(700, "GET", "v2/u/r/blobs/b3", status=307, written=0),
            record(800, "GET", "v2/u/r/tags/list"),
            record(900, "PUT", "v2/u/r/manifests/t2", status=201, **{"http.request.contentlength": 900}),
            record(1000, "DELETE", "v2/u/r/manifests/t1", status=202),
        ],
    )
    trace = load_trace([path])
    assert [(r.offset, r.method, r.kind, r.name, r.size) for r in trace.records] == [
        (0.0, "GET", "manifest", "t1", 1200),
        (0.7, "GET", "blob", "b3", None),  # a redirect wrote no body: its size is unknown
        (0.9, "PUT", "manifest", "t2", 900),
        (2.0, "GET", "blob", "b1", 500),
    ]
    assert trace.skipped == Counter(
        {"method HEAD": 1, "method DELETE": 1, "status 404": 1, "not a manifest or blob": 1}
    )
    assert trace.duration == 2.0


LENGTH = "http.request.contentlength"
PART = "upload part (replayed with its PUT)"


def test_uploads_as_the_registry_logs_them_are_blob_puts_and_their_parts_are_counted(tmp_path):
    """distribution logs a blob's push as POST …/blobs/uploads/, PATCH and PUT …/uploads/<session>:
    the commit is the upload, sized by what its records carried; the other steps are its parts."""
    path = write(
        tmp_path / "t.json",
        [
            # docker's push: the bytes in one PATCH, then an empty PUT
            record(0, "POST", "v2/u/r/blobs/uploads/", status=202),
            record(100, "PATCH", "v2/u/r/blobs/uploads/s1", status=202, **{LENGTH: 700}),
            record(200, "PUT", "v2/u/r/blobs/uploads/s1", status=201, **{LENGTH: 0}),
            # a monolithic upload: the bytes in the PUT
            record(300, "POST", "v2/u/r/blobs/uploads/", status=202),
            record(400, "PUT", "v2/u/r/blobs/uploads/s2", status=201, **{LENGTH: 300}),
            # IBM's records: no length anywhere
            record(500, "POST", "v2/u/q/blobs/uploads/", status=202),
            record(600, "PATCH", "v2/u/q/blobs/uploads/s3", status=202),
            record(700, "PUT", "v2/u/q/blobs/uploads/s3", status=201),
            record(800, "POST", "v2/u/q/blobs/uploads/", status=201),  # a mount: no PUT follows
            record(900, "GET", "v2/u/q/blobs/uploads/s3", status=204),  # an upload's status
            record(950, "PATCH", "v2/u/q/blobs/uploads/s4", status=416),
        ],
    )
    trace = load_trace([path])
    assert [(r.offset, r.method, r.kind, r.repository, r.name, r.size) for r in trace.records] == [
        (0.0, "PUT", "blob", "u/r", "uploads/s1", 700),  # offsets from the first record kept
        (0.2, "PUT", "blob", "u/r", "uploads/s2", 300),
        (0.5, "PUT", "blob", "u/q", "uploads/s3", None),  # the replay draws it from --push-layer-size
    ]
    assert trace.skipped == Counter(
        {PART: 5, "blob mount (not replayed)": 1, "not a manifest or blob": 1, "status 416": 1}
    )
    plan = TracePlan.of(trace)
    assert plan.blob_sizes == {"uploads/s1": 700, "uploads/s2": 300} and plan.warm_blobs == []

    stats = trace_stats(trace, plan)
    assert stats["records"] == 3 and stats["mix"]["PUT blob"] == 3
    shown = "\n".join(stats_lines(stats))
    assert "5 upload part (replayed with its PUT)" in shown and "1 blob mount (not replayed)" in shown, shown
    assert re.search(r"PUT blob +3 +100.0 %", shown), shown


def test_the_patches_of_at_most_so_many_open_uploads_are_remembered(tmp_path, monkeypatch):
    monkeypatch.setattr(records_module, "MAX_OPEN_UPLOADS", 2)
    path = write(
        tmp_path / "t.json",
        [
            record(0, "PATCH", "v2/u/r/blobs/uploads/a", status=202, **{LENGTH: 10}),
            record(1, "PATCH", "v2/u/r/blobs/uploads/b", status=202, **{LENGTH: 20}),
            record(2, "PATCH", "v2/u/r/blobs/uploads/c", status=202, **{LENGTH: 30}),  # a is forgotten
            record(3, "PATCH", "v2/u/r/blobs/uploads/b", status=202, **{LENGTH: 5}),  # chunks add up
            record(4, "PUT", "v2/u/r/blobs/uploads/a", status=201),
            record(5, "PUT", "v2/u/r/blobs/uploads/b", status=201),
            record(6, "PUT", "v2/u/r/blobs/uploads/c", status=201, **{LENGTH: 4}),  # the last chunk
        ],
    )
    assert [(r.name, r.size) for r in load_trace([path]).records] == [
        ("uploads/a", None),
        ("uploads/b", 25),
        ("uploads/c", 34),
    ]


def test_each_logged_upload_is_replayed_as_a_whole_upload_of_a_blob_of_its_own(tmp_path):
    """In the in-memory registry: one POST, PATCH and PUT per commit record, none for its parts,
    of the size its records carried, else of --push-layer-size."""
    path = write(
        tmp_path / "t.json",
        [
            record(0, "POST", "v2/u/r/blobs/uploads/", status=202),
            record(100, "PATCH", "v2/u/r/blobs/uploads/s1", status=202, **{LENGTH: 700}),
            record(200, "PUT", "v2/u/r/blobs/uploads/s1", status=201),
            record(300, "POST", "v2/u/r/blobs/uploads/", status=202),
            record(400, "PATCH", "v2/u/r/blobs/uploads/s2", status=202),
            record(500, "PUT", "v2/u/r/blobs/uploads/s2", status=201),
            record(600, "PUT", "v2/u/q/blobs/uploads/s3", status=201),
        ],
    )
    settings = settings_from(SimpleNamespace(trace=[path], push_layer_size="3KiB"))
    trace = load_trace([path])
    replay = Replay(trace, TracePlan.of(trace), settings.images.prefix, settings.images.layer_size)
    fake = FakeRegistry()
    client = fake.client()
    sent = [replay_record(client, replay, r) for r in trace.records]
    assert sent == [700, 3072, 3072]
    assert [r.method for r in fake.requests] == ["POST", "PATCH", "PUT"] * 3
    assert [len(r.body) for r in fake.named("PATCH /v2/<name>/blobs/uploads/<session>")] == [700, 3072, 3072]
    stored = {repo: data for (repo, _), data in fake.blobs.items()}
    assert len(fake.blobs) == 3 and set(stored) == {replay.repository("u/r"), replay.repository("u/q")}
    assert len(set(fake.blobs.values())) == 3  # a fresh blob per upload


def test_files_merge_by_time_gzip_included_and_a_window_cuts_them(tmp_path):
    a = write(tmp_path / "a.json", [record(0, "GET", "v2/u/a/blobs/x"), record(3000, "GET", "v2/u/a/blobs/y")])
    b_path = tmp_path / "b.json.gz"
    with gzip.open(b_path, "wt") as f:
        json.dump([record(1500, "GET", "v2/u/b/manifests/t")], f)
    trace = load_trace([a, str(b_path)])
    assert [(r.offset, r.repository) for r in trace.records] == [(0.0, "u/a"), (1.5, "u/b"), (3.0, "u/a")]
    cut = load_trace([a, str(b_path)], Window.parse("1-2"))
    assert [(r.offset, r.name) for r in cut.records] == [(0.5, "t")]  # offsets from the window's start
    assert cut.skipped["outside the window"] == 2


def test_the_reader_decodes_records_across_read_boundaries(monkeypatch):
    monkeypatch.setattr(records_module, "READ_SIZE", 7)
    items = [{"a": i, "s": "x" * (i * 3)} for i in range(50)]
    assert list(iter_json_array(io.StringIO(json.dumps(items, indent=1)), "t")) == items
    assert list(iter_json_array(io.StringIO(" [ ] "), "t")) == []


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("", "the file is empty"),
        ('{"a": 1}', "expected a JSON array"),
        ('[{"a": 1}, {"b": ', "invalid JSON"),
        ('[{"a": 1}', "not closed"),
        ("[1]", "record 0 is not a JSON object"),
    ],
)
def test_a_broken_trace_gets_one_line_naming_the_cause(tmp_path, text, cause):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=cause):
        load_trace([str(path)])


def test_bad_fields_and_missing_files_name_the_file_and_the_record(tmp_path):
    bad = write(tmp_path / "f.json", [record(0, "GET", "v2/u/r/blobs/b", **{"http.response.status": "oops"})])
    with pytest.raises(UsageError, match=r"f.json: record 0: http.response.status is not a number"):
        load_trace([bad])
    stamp = write(tmp_path / "s.json", [{**record(0, "GET", "v2/u/r/blobs/b"), "timestamp": "yesterday"}])
    with pytest.raises(UsageError, match="invalid timestamp 'yesterday'"):
        load_trace([stamp])
    with pytest.raises(UsageError, match="cannot read trace .*nope.json: No such file"):
        load_trace([str(tmp_path / "nope.json")])
    (tmp_path / "z.json.gz").write_bytes(b"not gzip")
    with pytest.raises(UsageError, match="not a gzip file"):
        load_trace([str(tmp_path / "z.json.gz")])
    with pytest.raises(UsageError, match="the end is not after the start"):
        Window.parse("5-5")


def test_anonymised_names_map_to_valid_names_the_same_way_every_time():
    name = repository_name("regload/load", "1ad5ef47/99bfa4a4")
    assert name == repository_name("regload/load", "1ad5ef47/99bfa4a4") != repository_name("regload/load", "x/y")
    assert REPOSITORY.match(name) and name.startswith("regload/load-trace/")
    assert tag_name("6a1d9f") == "6a1d9f"
    assert re.match(r"^t-[0-9a-f]{16}$", tag_name("sha256:abc/bad tag"))


def test_the_plan_lists_what_gets_read_with_the_largest_size_recorded(tmp_path):
    path = write(
        tmp_path / "t.json",
        [
            record(0, "GET", "v2/u/a/blobs/b1", written=100),
            record(1, "GET", "v2/u/b/blobs/b1", written=300),  # the same blob in another repository
            record(2, "GET", "v2/u/a/blobs/b2", status=307),
            record(3, "PUT", "v2/u/c/blobs/b3", status=201, **{"http.request.contentlength": 50}),
            record(4, "GET", "v2/u/a/manifests/t", written=2000),
            record(5, "PUT", "v2/u/c/manifests/t2", status=201),
        ],
    )
    plan = TracePlan.of(load_trace([path]))
    assert plan.warm_blobs == [("u/a", "b1"), ("u/b", "b1"), ("u/a", "b2")]
    assert plan.blob_sizes == {"b1": 300, "b3": 50} and plan.unsized == 1
    assert plan.warm_manifests == [("u/a", "t")] and plan.manifest_sizes == {("u/a", "t"): 2000}
    assert plan.manifest_repositories == ["u/a", "u/c"]


def test_replayed_manifests_have_the_recorded_size_and_stay_valid():
    small = manifest_for("u/a", "t", None)
    assert len(manifest_for("u/a", "t", 5000)) == 5000
    assert len(manifest_for("u/a", "t", 10)) == len(small)  # never below the smallest manifest
    assert len(manifest_for("u/a", "t", 1 << 30)) == MAX_MANIFEST
    doc = json.loads(manifest_for("u/a", "t", 5000))
    assert doc["schemaVersion"] == 2 and doc["annotations"]["org.regload.workload.trace.tag"] == "t"
    assert manifest_for("u/a", "t", None) != manifest_for("u/a", "t2", None)


def test_a_trace_blob_is_the_same_bytes_for_the_same_name_and_learns_its_digest_once():
    a, b, c = TraceBlob("b1", 3 << 20), TraceBlob("b1", 3 << 20), TraceBlob("b2", 3 << 20)
    data = b"".join(bytes(x) for x in a.open())
    assert len(data) == 3 << 20 and data == b"".join(bytes(x) for x in b.open())
    assert a.known_descriptor() is not None and a.descriptor() == b.descriptor() != c.descriptor()


def test_percentiles_are_nearest_rank():
    values = list(range(1, 101))
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [50, 90, 99, 100]
    assert percentile([], 50) is None


def spec(**kw: object) -> SynthSpec:
    base: dict[str, object] = {"blob_sizes": parse_size_distribution("4KiB-64KiB", "--blob-size")}
    return SynthSpec(**{**base, **kw})  # type: ignore[arg-type]


def test_synth_writes_the_asked_count_span_and_repositories_the_same_for_a_seed(tmp_path):
    out = io.StringIO()
    assert write_trace(spec(), out) == 240
    again = io.StringIO()
    write_trace(spec(), again)
    assert out.getvalue() == again.getvalue()
    other = io.StringIO()
    write_trace(spec(seed=1), other)
    assert other.getvalue() != out.getvalue()
    path = tmp_path / "t.json"
    path.write_text(out.getvalue())
    trace = load_trace([str(path)])
    assert len(trace.records) == 240 and trace.duration == 12.0 and not trace.skipped
    assert len({r.repository for r in trace.records}) == 6
    mix = Counter(f"{r.method} {r.kind}" for r in trace.records)
    # 25/60/5/10 %, within four binomial standard deviations of 240 draws
    for op, share in {"GET manifest": 0.25, "GET blob": 0.6, "PUT manifest": 0.05, "PUT blob": 0.1}.items():
        assert abs(mix[op] - 240 * share) <= 4 * (240 * share * (1 - share)) ** 0.5, mix
    assert all(r.size is not None and 4096 <= r.size <= 65536 for r in trace.records if r.kind == "blob")


def test_synth_repositories_follow_the_popularity():
    records = list(synth_records(spec(requests=5000, repositories=10, popularity=Zipf(1.1))))
    by_repo = Counter(r["http.request.uri"].split("/")[1] for r in records).most_common()
    weights = [1 / (k + 1) ** 1.1 for k in range(10)]
    assert by_repo[0][1] / 5000 == pytest.approx(weights[0] / sum(weights), abs=0.03)
    assert by_repo[0][1] > 3 * by_repo[-1][1]


def test_synth_pushed_tags_are_read_back_later():
    records = list(synth_records(spec(requests=2000)))
    pushed = {
        r["http.request.uri"]
        for r in records
        if r["http.request.method"] == "PUT" and "/manifests/" in r["http.request.uri"]
    }
    read = {r["http.request.uri"] for r in records if r["http.request.method"] == "GET"}
    assert pushed & read, "no manifest PUT was followed by a GET of it"


def test_bad_mix_is_refused():
    assert parse_mix("get-blob=3,put-blob=1") == {"GET blob": 3.0, "PUT blob": 1.0}
    for text in ("get-blobs=1", "get-blob", "get-blob=-1"):
        with pytest.raises(UsageError, match="invalid --mix"):
            parse_mix(text)
    with pytest.raises(UsageError, match="at least one above 0"):
        SynthSpec(mix={"GET blob": 0.0})


def test_stats_of_a_trace(tmp_path):
    path = tmp_path / "t.json"
    with open(path, "w") as f:
        write_trace(spec(requests=1000, duration=100.0), f)
    stats = trace_stats(load_trace([str(path)]))
    assert stats["records"] == 1000 and stats["duration"] == 100.0
    assert stats["rate"]["mean"] == 10.0 and stats["rate"]["peak_second"] >= 10
    assert sum(stats["mix"].values()) == 1000
    assert 4096 <= stats["sizes"]["blob"]["p50"] <= stats["sizes"]["blob"]["p90"] <= 65536
    assert stats["warm_up"]["blobs"] > 0 and stats["warm_up"]["blobs_without_size"] == 0


# The peak resident size of this process in KiB: VmHWM is per address space, new at exec (ru_maxrss
# is not: a child started from a large pytest would inherit its peak).
PEAK_OF = """
import json, re, sys
from regload.workload.trace.records import load_trace
def peak():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
before = peak()
if sys.argv[1] == "json.load":
    kept = json.load(open(sys.argv[2]))
else:
    kept = load_trace([sys.argv[2]]).records
print(len(kept), peak() - before)
"""


def test_a_trace_of_a_hundred_thousand_records_is_read_without_holding_its_json(tmp_path):
    """Real traces hold millions of records: the reader decodes one at a time and keeps one copy
    of each name, so its peak is a fraction of what loading the JSON whole takes (side by side,
    each in a child of its own: growth of the peak resident size, in KiB)."""
    path = tmp_path / "big.json"
    with open(path, "w") as f:
        write_trace(spec(requests=100_000, duration=3600.0), f)
    peaks = {}
    for how in ("json.load", "load_trace"):
        child = subprocess.run([sys.executable, "-c", PEAK_OF, how, str(path)], capture_output=True, text=True)
        assert child.returncode == 0, child.stderr
        count, peaks[how] = map(int, child.stdout.split())
        assert count == 100_000
    assert 0 < peaks["load_trace"] < peaks["json.load"] / 3, peaks


def test_the_trace_commands_print_and_fail_in_one_line(tmp_path):
    out = tmp_path / "t.json"
    made = regload("trace", "synth", str(out), "--requests", "100", "--blob-size", "1KiB", "--json")
    assert made.code == 0 and made.json["records"] == 100, made.output
    shown = regload("trace", "stats", str(out))
    assert shown.code == 0 and "100 requests to replay over 12 s" in shown.stdout, shown.output
    assert "warm-up creates" in shown.stdout
    as_json = regload("trace", "stats", str(out), "--json", "--window", "0-6")
    assert as_json.code == 0 and as_json.json["records"] < 100
    missing = regload("trace", "stats", str(tmp_path / "nope.json"))
    assert missing.code != 0 and missing.stderr.count("\n") == 1 and "nope.json" in missing.stderr
    refused = regload("trace", "synth", str(tmp_path / "never.json"), "--blob-size", "lognormal:bad")
    assert refused.code != 0 and "--blob-size" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "never.json").exists() and list(tmp_path.glob(".regload-trace-*")) == []
