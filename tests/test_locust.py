"""End to end: the Locust harness (``locust -f locustfile.py``) against the real registry.

Each test runs locust as a subprocess for a few seconds with small images (``SMALL_IMAGES``)
and reads back what it wrote: the stats CSV and JSON, regload's throughput files, the logs.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from regload.local_registry import LocalRegistry, free_port
from tests.support.locust_run import (
    SMALL_IMAGE_BYTES,
    TEST_LOCUSTFILES,
    UNTEMPLATED,
    Locust,
    Result,
    assert_clean,
    assert_secret_absent,
    headless,
    run_locust,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.locust_run

PING = ("GET", "/v2/")
GET_MANIFEST = ("GET", "/v2/<name>/manifests/<reference>")
PUT_MANIFEST = ("PUT", "/v2/<name>/manifests/<reference>")
GET_BLOB = ("GET", "/v2/<name>/blobs/<digest>")
HEAD_BLOB = ("HEAD", "/v2/<name>/blobs/<digest>")
POST_UPLOAD = ("POST", "/v2/<name>/blobs/uploads/")
POST_SINGLE = ("POST", "/v2/<name>/blobs/uploads/?digest=<digest>")
PATCH_UPLOAD = ("PATCH", "/v2/<name>/blobs/uploads/<session>")
PUT_UPLOAD = ("PUT", "/v2/<name>/blobs/uploads/<session>?digest=<digest>")
GET_TOKEN = ("GET", "token")
PULL = ("PULL", "image")
PUSH = ("PUSH", "image")

#: The upload requests each mode makes against distribution 2.8, which answers a single POST
#: with 202 and a session (the client then commits with PUT).
UPLOAD_ROWS = {
    "streamed": (POST_UPLOAD, PATCH_UPLOAD, PUT_UPLOAD),
    "chunked": (POST_UPLOAD, PATCH_UPLOAD, PUT_UPLOAD),
    "monolithic": (POST_UPLOAD, PUT_UPLOAD),
    "single-post": (POST_SINGLE, PUT_UPLOAD),
}
SUMMARY = re.compile(r"^regload throughput: (pull|push)ed [\d.]+ MiB in (\d+) images \((\d+) failed\)", re.M)


def successes(row: dict[str, str]) -> int:
    return int(row["Total Request Count"]) - int(row["Total Failure Count"])


def history_so_far(prefix: Path, op: tuple[str, str]) -> list[dict[str, str]]:
    """The ``PREFIX_stats_history.csv`` rows of ``op`` written so far by a running Locust, without
    a last line still being written."""
    try:
        text = Path(f"{prefix}_stats_history.csv").read_text()
    except FileNotFoundError:
        return []
    rows = csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1]))
    return [r for r in rows if None not in r.values() and (r["Type"], r["Name"]) == op]


@pytest.mark.parametrize(
    ("mode", "run_time"), [("streamed", "6s"), ("chunked", "5s"), ("monolithic", "5s"), ("single-post", "5s")]
)
def test_headless_run_with_both_user_classes(registry_anon, tmp_path, mode, run_time):
    # The thresholds given here are generous: they must pass, and the run exit 0.
    args = ["--upload-mode", mode, "--chunk-size", "16KiB", "--check-fail-ratio", "0"]
    args += ["--check-percentile", "PULL image:95<100000", "PullUser", "PushUser"]
    result = run_locust(
        headless(registry_anon.url, tmp_path / "run", *args, users=6, run_time=run_time),
        tmp_path,
        name="run",
        timeout=60,
    )
    assert_clean(result)
    assert "regload check failed" not in result.stderr

    stats = result.stats()
    expected = {PING, GET_MANIFEST, GET_BLOB, HEAD_BLOB, PUT_MANIFEST, PULL, PUSH, *UPLOAD_ROWS[mode]}
    assert expected <= set(stats), sorted(stats)
    # One row per endpoint template: the count is bounded, and no digest or session leaks in.
    # ~200 images moved, yet a dozen rows at most.
    assert len(stats) <= 12, sorted(stats)
    for _, name in stats:
        assert not UNTEMPLATED.search(name), name
    if mode == "chunked":  # 16 KiB chunks of 32-64 KiB layers: several PATCHes per committed blob
        assert int(stats[PATCH_UPLOAD]["Request Count"]) > int(stats[PUT_UPLOAD]["Request Count"])

    # A whole operation's length is the bytes it moved; a blob GET's is the bytes it read.
    exact = result.json_stats()
    for op in (PULL, PUSH):
        assert exact[op]["num_requests"] > 0, op
        assert exact[op]["total_content_length"] >= exact[op]["num_requests"] * SMALL_IMAGE_BYTES, exact[op]
    assert exact[GET_BLOB]["total_content_length"] >= exact[PULL]["num_requests"] * SMALL_IMAGE_BYTES

    # Throughput: in the CSV, the JSON, and the console summary, from the same stats rows.
    as_csv, as_json = result.throughput_csv(), result.throughput_json()
    for op in ("PULL", "PUSH"):
        total = exact[(op, "image")]
        assert int(as_csv[op]["Bytes"]) == as_json[op]["bytes"] == total["total_content_length"] > 0
        assert as_json[op]["images"] == total["num_requests"]
        assert as_json[op]["average_bps"] > 0
    summary = {m.group(1): (int(m.group(2)), int(m.group(3))) for m in SUMMARY.finditer(result.stderr)}
    assert summary == {"pull": (exact[PULL]["num_requests"], 0), "push": (exact[PUSH]["num_requests"], 0)}, (
        result.stderr[-3000:]
    )


def test_token_auth_and_token_cache_modes(registry_token, tmp_path):
    server = registry_token.token_server
    assert server is not None and registry_token.password
    issued_before = len(server.issued)
    fetched: dict[str, int] = {}
    for cache in ("shared", "user", "off"):
        args = ["--registry-username", registry_token.username, "--registry-password", registry_token.password]
        args += ["--token-cache", cache, "--html", str(tmp_path / f"{cache}.html"), "--json"]
        args += ["--loglevel", "DEBUG", "--logfile", str(tmp_path / f"{cache}.log"), "PullUser", "PushUser"]
        before = len(server.requests)
        result = run_locust(
            headless(registry_token.url, tmp_path / cache, *args, users=6), tmp_path, name=cache, timeout=60
        )
        fetched[cache] = len(server.requests) - before
        assert_clean(result)
        assert int(result.row(*GET_TOKEN)["Request Count"]) > 0
        assert int(result.row(*PULL)["Request Count"]) > 0 and int(result.row(*PUSH)["Request Count"]) > 0

    # Off: a token per challenged request; per user: one per user and scope; shared: per scope.
    assert fetched["off"] > 5 * fetched["user"], fetched
    assert fetched["user"] >= fetched["shared"], fetched

    # The password (or a basic-auth header made of it) and every token issued (or one of its three
    # JWT parts) are in no output: CSV, JSON, HTML, debug logs, stdout and stderr.
    tokens = server.issued[issued_before:]
    assert len(tokens) == sum(fetched.values())
    secrets = [registry_token.password, registry_token.basic_auth().split()[1]]
    secrets += [part for token in tokens for part in (token, *token.split("."))]
    texts = [(str(p), p.read_text(errors="replace")) for p in tmp_path.iterdir() if p.is_file()]
    assert {".html", ".log", ".stdout", ".json", ".csv"} <= {p.suffix for p in tmp_path.iterdir()}
    assert_secret_absent(secrets, texts)


@pytest.mark.parametrize("registry_name", ["registry_basic", "registry_token"])
def test_refused_credentials_leave_no_secret_in_any_output(request, registry_name, tmp_path):
    """A wrong password: the registry answers 401 (basic), or the token server refuses it
    (token). The failures name the status; neither password shows in any output."""
    registry = request.getfixturevalue(registry_name)
    wrong = "wrong-Secret-5150x"
    args = ["--registry-username", registry.username, "--registry-password", wrong, "--json"]
    args += ["--html", str(tmp_path / "run.html"), "--loglevel", "DEBUG", "--logfile", str(tmp_path / "run.log")]
    result = run_locust(
        headless(registry.url, tmp_path / "run", *args, "PullUser", "PushUser", users=3, run_time="3s"),
        tmp_path,
        name="run",
        timeout=60,
    )
    assert result.code == 1, result.output[-6000:]
    assert "Traceback" not in result.output, result.output[-6000:]
    pushes = [row["Error"] for row in result.failures() if (row["Method"], row["Name"]) == PUSH]
    # The cause the CLI gives, not a bare status.
    cause = "credentials refused" if registry_name == "registry_basic" else "authentication refused by "
    cause += registry.token_server.realm if registry.token_server else ""
    shown = re.compile(r"HTTP 401( UNAUTHORIZED)?: " + re.escape(cause))  # a HEAD's 401 has no body: no code
    assert pushes and all(shown.match(c) for c in pushes), result.failures()
    assert len(result.failures()) <= 6, result.failures()  # one row per kind of fault, never per request
    secrets = [registry.password, wrong]
    secrets += [base64.b64encode(f"{registry.username}:{pw}".encode()).decode() for pw in (registry.password, wrong)]
    texts = [(str(p), p.read_text(errors="replace")) for p in tmp_path.iterdir() if p.is_file()]
    assert {".html", ".log", ".stdout", ".json", ".csv"} <= {p.suffix for p in tmp_path.iterdir()}
    assert_secret_absent(secrets, texts)


@pytest.mark.parametrize(
    "who",
    [
        ("PushUser",),
        ("--pull-pool-size", "0", "--pull-image", "some/image:1", "PullUser"),
        ("PullUser",),  # the pool seeding asks first
    ],
    ids=["push", "pull", "seeding"],
)
def test_a_refused_password_does_not_flood_the_token_service(registry_token, tmp_path, who):
    """Each refusal is one failure with its cause, and the user waits --connection-backoff before
    the next try. Before, 4 users asked a token server that refuses at once for 6,000 (push) and
    12,000 (pull) tokens a second."""
    server = registry_token.token_server
    assert server is not None
    server.reset()
    users, seconds, backoff = 4, 4, 1.0
    args = ["--registry-username", registry_token.username, "--registry-password", "wrong-password"]
    args += ["--connection-backoff", str(backoff), *who]
    result = run_locust(
        headless(registry_token.url, tmp_path / "run", *args, users=users, run_time=f"{seconds}s"),
        tmp_path,
        name="run",
        timeout=60,
    )
    assert result.code == 1 and "Traceback" not in result.output, result.output[-6000:]
    refused = len(server.refused)
    assert 1 <= refused <= users * (seconds / backoff + 2), refused
    assert server.requests == []  # not a token issued
    causes = {row["Error"] for row in result.failures()}
    assert f"HTTP 401 UNAUTHORIZED: authentication refused by {server.realm}" in causes, causes
    assert len(result.failures()) <= 3, result.failures()
    hint = "check --registry-username and --registry-password"
    assert result.stderr.count(hint) == 1, result.stderr[-4000:]


@pytest.mark.parametrize(
    "mistake, cause, hint",
    [
        ("https", "TLS error: the registry answered in plain HTTP, not TLS", "give --host http://HOST:PORT"),
        ("no credentials", "HTTP 401 UNAUTHORIZED: no credentials given", "give credentials with --registry-username"),
    ],
)
def test_a_new_users_mistake_is_named_with_the_option_that_mends_it(
    registry_anon, registry_basic, tmp_path, mistake, cause, hint
):
    host = registry_anon.url.replace("http://", "https://") if mistake == "https" else registry_basic.url
    result = run_locust(
        headless(host, tmp_path / "run", "PushUser", users=2, run_time="2s"), tmp_path, name="run", timeout=60
    )
    assert result.code == 1 and "Traceback" not in result.output, result.output[-6000:]
    assert cause in {row["Error"] for row in result.failures()}, result.failures()
    assert result.stderr.count(hint) == 1, result.stderr[-4000:]


def test_distributed_master_and_two_workers(registry_anon, tmp_path):
    port = free_port()
    master_args = ["--master", "--expect-workers", "2", "--expect-workers-max-wait", "30"]
    master_args += ["--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "PullUser", "PushUser"]
    # Workers get no regload option: the master's (small images) must reach them.
    worker_args = ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port), "--loglevel", "DEBUG"]
    master = Locust(
        headless(registry_anon.url, tmp_path / "master", *master_args, run_time="5s"), tmp_path, name="master"
    )
    workers = [Locust(worker_args, tmp_path, name=f"worker{i}") for i in (1, 2)]
    try:
        code = master.wait(60)
        worker_codes = [w.wait(30) for w in workers]
    finally:
        for process in (master, *workers):
            process.kill()
    result = Result(code, master.stdout, master.stderr, tmp_path / "master")
    assert_clean(result)
    assert "2 workers connected" in master.stderr
    assert worker_codes == [0, 0], [w.output for w in workers]

    for worker in workers:
        assert "Traceback" not in worker.stderr, worker.output
        spawned = re.findall(r"Spawning additional (\{.*?\})", worker.stderr)
        assert spawned and sum(json.loads(spawned[0]).values()) > 0, worker.output[-3000:]

    stats = result.json_stats()
    for op in (PULL, PUSH):
        assert stats[op]["num_requests"] > 0 and stats[op]["num_failures"] == 0
    # The master's options reached the workers: its pool of 2 small images, not the defaults (8 images of
    # 3 layers of 1 MiB), and its pushed images of 2 layers of 32-64 KiB (default: 3 of 1 MiB).
    assert any("pull pool ready: 2 images" in w.stderr for w in workers), [w.stderr for w in workers]
    average = {op: stats[op]["total_content_length"] / stats[op]["num_requests"] for op in (PULL, PUSH)}
    assert SMALL_IMAGE_BYTES <= average[PULL] < 2 * SMALL_IMAGE_BYTES, average
    assert SMALL_IMAGE_BYTES <= average[PUSH] < 3 * SMALL_IMAGE_BYTES, average


def test_processes_forks_workers(registry_anon, tmp_path):
    port = str(free_port())  # the forked workers connect to --master-port
    args = ["--processes", "2", "--master-bind-port", port, "--master-port", port, "PullUser", "PushUser"]
    result = run_locust(
        headless(registry_anon.url, tmp_path / "run", *args, run_time="4s"), tmp_path, name="run", timeout=60
    )
    assert_clean(result)
    assert "2 workers connected" in result.stderr
    assert int(result.row(*PULL)["Request Count"]) > 0 and int(result.row(*PUSH)["Request Count"]) > 0


def test_registry_stopped_and_restarted_mid_run(tmp_path):
    # Port and storage pinned, so that they survive stop(): restart() brings back the same registry.
    registry = LocalRegistry(port=free_port(), storage_dir=tmp_path / "storage").start()
    # A short backoff: each user fails to connect dozens of times during the gap, so a socket
    # leaked per failure would show in the count below.
    args = ["--csv-full-history", "--connection-backoff", "0.1", "TrackedPullUser", "TrackedPushUser"]
    locust = Locust(
        headless(registry.url, tmp_path / "run", *args, run_time="15s"),
        tmp_path,
        name="run",
        locustfile=TEST_LOCUSTFILES / "progress.py",
    )
    # Each user's pool holds at most max(--pull-jobs, --push-jobs) + 1 = 6 connections.
    socket_bound = 4 * 6 + 4
    prefix = tmp_path / "run"

    def history_shows(
        what: str,
        condition: Callable[[list[dict[str, str]]], bool],
        *,
        each_time: Callable[[], bool] = lambda: True,
        interval: float = 0.25,
    ) -> None:
        """Wait until the history written so far (progress.py has it flushed every second) meets
        ``condition`` for both PULL and PUSH image rows, and ``each_time`` (called once a poll)."""
        wait_until(
            lambda: (
                locust.process.poll() is not None
                or (each_time() and all(condition(history_so_far(prefix, op)) for op in (PULL, PUSH)))
            ),
            timeout=30,
            interval=interval,
            message=lambda: f"the history never showed {what}\n{locust.output[-4000:]}",
        )
        assert locust.process.poll() is None, f"locust ended before the history showed {what}\n{locust.output[-4000:]}"

    try:
        locust.wait_for("pull pool ready", timeout=20)
        # Pulls and pushes succeed for a while, and the history records it: a row stamped T (the
        # stats of a moment in [T, T+1)) a whole second ago counts successes.
        history_shows(
            "successes", lambda rows: any(successes(r) > 0 and int(r["Timestamp"]) + 1 <= time.time() for r in rows)
        )
        sockets_before = locust.open_sockets()
        stopping = time.time()
        registry.stop()
        stopped = time.time()
        # The gap: the sockets counted every 0.5 s for 3 s at least (each user fails to connect
        # dozens of times meanwhile), until a row stamped within the gap counts failures.
        sockets_gap: list[int] = []
        history_shows(
            "failures after the registry stopped",
            lambda rows: any(
                int(r["Total Failure Count"]) > 0 and stopped <= int(r["Timestamp"]) <= time.time() - 1 for r in rows
            ),
            each_time=lambda: sockets_gap.append(locust.open_sockets()) or len(sockets_gap) >= 7,
            interval=0.5,
        )
        restarting = time.time()
        registry.restart()
        # Users recover: a row stamped after the restart counts more successes than any before it.
        history_shows(
            "successes after the restart",
            lambda rows: any(
                int(r["Timestamp"]) >= restarting
                and successes(r) > max([successes(g) for g in rows if int(g["Timestamp"]) + 1 <= restarting] or [0])
                for r in rows
            ),
        )
        sockets_after = [locust.open_sockets()]
        time.sleep(0.5)
        sockets_after.append(locust.open_sockets())
        code = locust.wait(timeout=40)  # it ends by itself at -t
    finally:
        locust.kill()
        registry.stop()
    result = Result(code, locust.stdout, locust.stderr, tmp_path / "run")
    assert code == 1, result.output[-6000:]  # Locust's --exit-code-on-error, as requests failed
    assert "--run-time limit reached" in result.stderr
    # No user died: no exception in a user, no traceback, all 4 users there to the end.
    assert result.exceptions() == []
    assert "Traceback" not in result.stderr + result.stdout, result.output[-6000:]
    # No connection leaked: not while the registry was down, not after it came back.
    assert 0 < sockets_before <= socket_bound, sockets_before
    assert max(sockets_gap + sockets_after) <= socket_bound, (sockets_before, sockets_gap, sockets_after)
    # No user stuck in a request: every one of them completed an operation after the restart.
    progress = re.findall(r"progress: (\w+) \w+ last success at ([\d.]+)", result.stderr)
    assert len(progress) == 4, result.stderr[-4000:]
    assert all(float(when) > restarting for _, when in progress), (restarting, progress)

    # Failures during the gap name a connection error (refused, reset, closed): nothing else.
    causes = {row["Error"] for row in result.failures()}
    assert causes and all("connection error: " in cause for cause in causes), causes

    # The history says when: fine before the stop, failing during the gap, succeeding after it.
    # A row stamped T holds the stats of a moment in [T, T+1).
    for op in (PULL, PUSH):
        rows = result.history(*op)
        before = [r for r in rows if int(r["Timestamp"]) + 1 <= stopping]
        gap = [r for r in rows if stopped <= int(r["Timestamp"]) and int(r["Timestamp"]) + 1 <= restarting]
        assert before and gap, (op, stopping, stopped, restarting, [r["Timestamp"] for r in rows])
        assert successes(before[-1]) > 0 and before[-1]["Total Failure Count"] == "0", (op, before[-1])
        assert int(gap[-1]["Total Failure Count"]) > int(before[-1]["Total Failure Count"]), (op, gap[-1])
        final = result.json_stats()[op]
        assert final["num_requests"] - final["num_failures"] > successes(gap[-1]), (op, final, gap[-1])
        assert {r["User Count"] for r in rows if int(r["Timestamp"]) >= restarting} == {"4"}


@pytest.mark.parametrize("user_class", ["PullUser", "PushUser"])
def test_fail_ratio_check_fails_the_run_when_the_registry_is_down(tmp_path, user_class):
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there: a stopped registry
    # Locust itself exits 1 when a request failed; without that, only the check can fail the run.
    args = ["--exit-code-on-error", "0", "--check-fail-ratio", "0", user_class]
    result = run_locust(
        headless(down, tmp_path / "run", *args, users=2, run_time="4s"), tmp_path, name="run", timeout=60
    )
    assert result.code == 1, result.output[-6000:]
    assert re.search(r"regload check failed: .*failure ratio [\d.]+ is above --check-fail-ratio 0", result.stderr), (
        result.stderr[-3000:]
    )
    # Each user class counts its whole operation as failed, naming the cause itself (a
    # PullUser's pool could not be seeded: the seeding's cause), in the same words as the
    # request's own row: one fault, one name, on every row.
    operation = "PULL" if user_class == "PullUser" else "PUSH"
    failed = [r for r in result.failures() if (r["Method"], r["Name"]) == (operation, "image")]
    assert failed, result.failures()
    assert {r["Error"] for r in result.failures()} == {"connection error: connection refused"}, result.failures()
    assert "Traceback" not in result.stderr


def test_impossible_percentile_check_fails_the_run(registry_anon, tmp_path):
    args = ["--check-percentile", "PULL image:50<0.001", "PullUser"]
    result = run_locust(
        headless(registry_anon.url, tmp_path / "run", *args, users=2, run_time="5s"), tmp_path, name="run", timeout=60
    )
    assert result.code == 1, result.output[-6000:]
    assert result.total()["Failure Count"] == "0"  # the percentile failed the run, nothing else
    failed = re.search(r"regload check failed: PULL image: p50 is \d+ ms, above 0.001 ms", result.stderr)
    assert failed, result.stderr[-3000:]


def test_without_host_a_local_registry_is_started(tmp_path):
    result = run_locust(
        headless(None, tmp_path / "run", "PullUser", "PushUser", users=2, run_time="5s"),
        tmp_path,
        name="run",
        timeout=60,
    )
    assert_clean(result)
    started = re.search(r"no --host given: started a local docker-registry at http://127\.0\.0\.1:(\d+)", result.stderr)
    assert started, result.stderr[-3000:]
    assert int(result.row(*PULL)["Request Count"]) > 0 and int(result.row(*PUSH)["Request Count"]) > 0
    # ... and stopped when locust quits.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(started.group(1))), timeout=2).close()


@pytest.mark.parametrize("how", ["REGLOAD_REGISTRY_BINARY", "PATH"])
def test_without_host_nor_registry_binary_says_how_to_install_one(tmp_path, how):
    empty = tmp_path / "bin"
    empty.mkdir()
    # Without the variable, only $PATH is searched.
    env = (
        {"REGLOAD_REGISTRY_BINARY": "/nonexistent"}
        if how != "PATH"
        else {"PATH": str(empty), "REGLOAD_REGISTRY_BINARY": None}
    )
    result = run_locust(
        headless(None, tmp_path / "run", "PullUser", users=1, run_time="2s"), tmp_path, name="run", env=env, timeout=60
    )
    assert result.code == 1, result.output
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("regload: error: no --host given")]
    assert len(lines) == 1 and "apt-get install docker-registry" in lines[0], result.stderr
    if how == "PATH":
        assert "not found on $PATH" in lines[0]
    else:
        assert "/nonexistent" in lines[0]
