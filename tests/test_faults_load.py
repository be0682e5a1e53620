"""Load under faults: Locust's pull and push users through the fault proxy, every fault kind on,
then ``regload verify`` on what the run said it pushed; and the retry policy end to end.

A registry fault must show up as a failure naming its cause, never kill a user, never let a
corrupted blob count as a success, and never lose an image the run reported as pushed.
"""

from __future__ import annotations

import re
import time

import pytest

from regload.local_registry import Htpasswd, LocalRegistry
from tests.support.cli import regload
from tests.support.fault_proxy import FAULT_KINDS, Fault, FaultProxy
from tests.support.htpasswd import write_htpasswd
from tests.support.locust_run import Locust, Result, assert_secret_absent, headless

GET_BLOB = ("GET", "/v2/<name>/blobs/<digest>")
PULL = ("PULL", "image")
PUSH = ("PUSH", "image")

#: Every cause a fault may produce in the failures table (and nothing else may show up there).
#: A HEAD answer has no body, so no spec error code.
CAUSES = {
    "status_500": r"HTTP 500( UNKNOWN)?",
    "status_502": r"HTTP 502",
    "status_503": r"HTTP 503",
    "status_429": r"HTTP 429( TOOMANYREQUESTS)?",
    "digest": r"digest mismatch",
    "connection": r"connection error: connection (reset by peer|closed .*)",
}
USER, PASSWORD = "loader", "fault-run-s3cret"
#: Requests that may have met a fault and not be reported: those in flight when the run stops
#: (one per user). Nothing else is cancelled: pool images have one layer (fetched after the
#: config, alone) and pushes upload one blob at a time (--push-jobs 1).
IN_FLIGHT = 6


def _fault_mix(fraction: float) -> list[Fault]:
    faults = [Fault(kind, fraction) for kind in FAULT_KINDS if kind not in ("delay", "redirect_blob")]
    faults.append(Fault("delay", fraction, seconds=0.2))
    faults.append(Fault("redirect_blob", fraction * 3, method="GET", path=r"/blobs/sha256:"))
    return faults


@pytest.fixture
def proxied_registry(tmp_path):
    """A basic-auth registry of its own behind the fault proxy (which forwards Authorization)."""
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {USER: PASSWORD})
    registry = LocalRegistry(storage_dir=tmp_path / "storage", auth=Htpasswd(htpasswd)).start()
    # Users keep their connections alive: room for all of them, and a short idle timeout.
    proxy = FaultProxy(registry.url, seed=20261127, max_connections=512, timeout=10).start()
    try:
        yield registry, proxy
        assert proxy.stop() == 0  # every proxy thread ended (checked when the test passed)
    finally:
        proxy.stop()
        registry.stop()


@pytest.mark.locust_run
def test_load_under_every_fault_kind_then_verify_finds_every_push(proxied_registry, tmp_path):
    registry, proxy = proxied_registry
    audit = tmp_path / "pushed.jsonl"
    args = ["--audit-file", str(audit), "--connection-backoff", "0.2", "--push-jobs", "1", "PullUser", "PushUser"]
    run_time = 15
    locust = Locust(
        headless(proxy.url, tmp_path / "run", *args, users=6, run_time=f"{run_time}s"),
        tmp_path,
        name="run",
        env={"REGLOAD_USERNAME": USER, "REGLOAD_PASSWORD": PASSWORD},
    )
    try:
        # The pull pool is seeded through a well-behaved proxy; then every fault kind is turned on.
        locust.wait_for("pull pool ready", timeout=30)
        proxy.set_faults(_fault_mix(0.02))
        faulty_since = time.monotonic()
        code = locust.wait(timeout=run_time + 30)
        ran_for = time.monotonic() - faulty_since
    finally:
        locust.kill()
    proxy.clear_faults()
    counters = proxy.counters()
    result = Result(code, locust.stdout, locust.stderr, tmp_path / "run")

    # It ended on time, by itself, with every user alive to the end.
    assert "--run-time limit reached" in result.stderr, result.output[-6000:]
    assert ran_for < run_time + 15, ran_for
    assert result.exceptions() == [], result.exceptions()
    assert "Traceback" not in result.stderr + result.stdout, result.output[-6000:]
    assert code == 1  # requests failed: Locust's --exit-code-on-error

    # Every fault kind was injected, and each failure names a cause a fault explains.
    assert all(counters.faults(kind) > 0 for kind in FAULT_KINDS), counters.injected
    failures = result.failures()
    allowed = re.compile("|".join(f"(?:{pattern})" for pattern in CAUSES.values()))
    unexplained = [row for row in failures if not allowed.fullmatch(row["Error"])]
    assert not unexplained, unexplained

    # Every injected fault that breaks a request is counted as that request's failure (retries
    # are off), except for the few requests in flight at the end.
    def failed(cause: str, endpoint: tuple[str, str] | None = None) -> int:
        return sum(
            int(row["Occurrences"])
            for row in failures
            if re.fullmatch(CAUSES[cause], row["Error"]) and endpoint in (None, (row["Method"], row["Name"]))
        )

    def injected(kind: str, *endpoints: str) -> int:
        return sum(counters.faults(kind, e) for e in endpoints) if endpoints else counters.faults(kind)

    for kind in ("status_500", "status_502", "status_503", "status_429"):
        assert failed(kind) >= injected(kind) - IN_FLIGHT > 0, (kind, failed(kind), counters.injected)
    # The body faults break the requests whose body regload reads (a ping's it does not).
    bodies = ("GET blob", "GET manifest")
    broken = injected("reset") + injected("close_mid_body", *bodies) + injected("truncate", *bodies)
    assert failed("connection") >= broken - IN_FLIGHT > 0, (failed("connection"), counters.injected_by_endpoint)
    # A digest check fails content that was corrupted and answers whose Docker-Content-Digest
    # lies: a manifest GET, a blob commit or a manifest PUT (a blob GET's header is not trusted).
    mismatched = injected("corrupt", *bodies) + injected("wrong_digest", "GET manifest", "PUT upload", "PUT manifest")
    assert failed("digest") >= mismatched - IN_FLIGHT > 0, (failed("digest"), counters.injected_by_endpoint)
    # No corrupted blob counted as a success: each corrupted blob GET is a digest mismatch there.
    assert failed("digest", GET_BLOB) >= injected("corrupt", "GET blob") - IN_FLIGHT > 0

    # Whole operations kept succeeding in between.
    stats = result.json_stats()
    for op in (PULL, PUSH):
        assert stats[op]["num_requests"] > stats[op]["num_failures"] > 0, (op, stats[op])
    # Redirected blob GETs were served by "storage", never with the registry's Authorization.
    hits = proxy.storage_hits()
    assert hits and not any(hit.authorization for hit in hits)
    # ... and the password is in none of the run's outputs.
    outputs = [(path.name, path.read_text()) for path in tmp_path.glob("run*") if path.is_file()]
    assert_secret_absent([PASSWORD], outputs)

    # Nothing reported as pushed is lost: every audit line is there and verifies intact.
    lines = audit.read_text().splitlines()
    pushed = stats[PUSH]["num_requests"] - stats[PUSH]["num_failures"]
    assert len(lines) == pushed > 0
    verified = regload(
        "verify", str(audit), "--registry", registry.url, "-u", USER, "--password-stdin", "--json", stdin=PASSWORD
    )
    assert verified.code == 0, verified.output
    assert verified.json["summary"]["intact"] == pushed, verified.json["summary"]


@pytest.mark.registry
def test_retries_are_explicit_and_each_attempt_is_seen(proxied_registry):
    registry, proxy = proxied_registry
    ref = f"{proxy.host}/retry/app:v1"
    login = ("-u", USER, "--password-stdin")
    pushed = regload("push", "synthetic:layers=1,size=64KiB,seed=3", ref, *login, stdin=PASSWORD)
    assert pushed.code == 0, pushed.output

    # Default: no retry. The first 503 fails the pull, and the registry saw one attempt.
    proxy.reset_counters()
    proxy.set_faults([Fault("status_503", 1.0, method="GET", path="/manifests/")])
    failed = regload("pull", ref, *login, stdin=PASSWORD)
    assert failed.code == 1 and "HTTP 503" in failed.stderr, failed.output
    assert proxy.counters().requests_by_endpoint["GET manifest"] == 1

    # With --retries, 429 (Retry-After honoured) and 503 answers are waited out, each attempt
    # counted; the pull succeeds.
    proxy.reset_counters()
    proxy.set_faults(
        [
            Fault("status_429", 1.0, method="GET", path="/manifests/", retry_after=1, limit=1),
            Fault("status_503", 1.0, method="GET", path="/blobs/", limit=2),
        ]
    )
    started = time.monotonic()
    ok = regload("pull", ref, *login, "--retries", "3", "--retry-backoff", "0.05", stdin=PASSWORD)
    assert ok.code == 0, ok.output
    assert time.monotonic() - started >= 1.0  # the Retry-After second was waited
    counters = proxy.counters()
    assert (counters.faults("status_429"), counters.faults("status_503")) == (1, 2)

    # A count that is spent reports the last failure.
    proxy.reset_counters()
    proxy.set_faults([Fault("status_502", 1.0, method="GET", path="/manifests/")])
    spent = regload("pull", ref, *login, "--retries", "2", "--retry-backoff", "0.01", stdin=PASSWORD)
    assert spent.code == 1 and "HTTP 502" in spent.stderr, spent.output
    assert proxy.counters().faults("status_502") == 3  # the first attempt and two retries


@pytest.mark.locust_run
def test_locust_retries_show_every_failed_attempt_while_images_succeed(proxied_registry, tmp_path):
    registry, proxy = proxied_registry
    args = ["--retries", "8", "--retry-backoff", "0.01", "PullUser"]
    run = headless(proxy.url, tmp_path / "run", *args, users=2, run_time="5s")
    locust = Locust(run, tmp_path, name="run", env={"REGLOAD_USERNAME": USER, "REGLOAD_PASSWORD": PASSWORD})
    try:
        locust.wait_for("pull pool ready", timeout=30)
        proxy.set_faults([Fault("status_503", 0.15, method="GET", path="/manifests/")])
        code = locust.wait(timeout=40)
    finally:
        locust.kill()
    result = Result(code, locust.stdout, locust.stderr, tmp_path / "run")
    stats = result.json_stats()
    manifest_gets = stats[("GET", "/v2/<name>/manifests/<reference>")]
    # Each 503 is a failed request of its own in the stats (but for one per user, answered as the
    # run stopped); the pulls all succeeded after them.
    injected = proxy.counters().faults("status_503")
    assert 0 <= injected - manifest_gets["num_failures"] <= 2 and manifest_gets["num_failures"] > 0, manifest_gets
    assert stats[PULL]["num_requests"] > 0 and stats[PULL]["num_failures"] == 0, stats[PULL]
