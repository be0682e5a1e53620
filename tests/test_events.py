"""``--event``: what it accepts and refuses (one line, naming the event, never its command), and
the phase arithmetic: differences of stats snapshots, before, during, between and after windows,
overlapping windows, a stats reset, and the words on what changed. Runs against the real
registry: tests/test_maintenance_windows.py."""

from __future__ import annotations

import pytest

from regload.errors import UsageError
from regload.workload.maintenance import (
    Event,
    RowCounts,
    Snapshot,
    Window,
    between,
    change_lines,
    parse_event,
    parse_events,
    percentile,
    phases,
    redact,
)

pytestmark = pytest.mark.unit

PULL = ("PULL", "image")
BLOB = ("GET", "/v2/<name>/blobs/<digest>")


def test_an_event_runs_a_command_or_marks_a_window():
    assert parse_event("at=60s,name=gc,run=registry garbage-collect /etc/config.yml") == Event(
        "gc", 60.0, command="registry garbage-collect /etc/config.yml"
    )
    assert parse_event(" name=pause , at=1m , for=30s ") == Event("pause", 60.0, duration=30.0)
    assert parse_event("at=500ms,name=a.b_c-1,for=2") == Event("a.b_c-1", 0.5, duration=2.0)


def test_run_takes_the_rest_of_the_text_commas_and_equals_signs_included():
    event = parse_event("name=x,at=0,run=echo a,b; FOO=1 env | grep -c at=")
    assert event.command == "echo a,b; FOO=1 env | grep -c at=" and event.at == 0.0


def test_events_are_ordered_by_time():
    events = parse_events(["at=2m,name=late,for=1s", "at=10s,name=early,for=1s", "  "])
    assert [e.name for e in events] == ["early", "late"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name=gc,run=true", "invalid --event gc: at= is missing"),
        ("at=5s,run=true", "invalid --event #1: name= is missing"),
        ("at=5s,name=gc,for=3s,run=true", "give run=COMMAND or for=DURATION, not both"),
        ("at=5s,name=gc", "give run=COMMAND (the window lasts while it runs) or for=DURATION"),
        ("at=soon,name=gc,run=true", "invalid --event gc at= duration 'soon'"),
        ("at=5s,name=gc,for=ever", "invalid --event gc for= duration 'ever'"),
        ("at=5s,name=gc,for=0s", "for= must be above 0 seconds"),
        ("at=5s,name=gc,run=", "run= is empty"),
        ("at=5s,name=before,for=1s", "not before, during, between or after"),
        ("at=5s,name=g c,for=1s", "name= must be up to 40 letters"),
        ("at=5s,at=6s,name=gc,for=1s", "at= is given twice"),
        ("when=5s,name=gc,for=1s", "'when' is not one of at=, name=, run=, for="),
        ("gc", "'gc' is not one of at=, name=, run=, for="),
    ],
)
def test_a_bad_event_is_one_line(text, words):
    with pytest.raises(UsageError) as e:
        parse_events([text])
    assert words in str(e.value) and "\n" not in str(e.value)


def test_errors_never_show_the_command():
    secret = "hunter2"
    for text in (f"at=5s,name=gc,for=1s,run=curl -u me:{secret} x", f"at=x,name=gc,run=curl -u me:{secret} x"):
        with pytest.raises(UsageError) as e:
            parse_events([text])
        assert secret not in str(e.value)


def test_two_events_of_one_name_are_refused():
    with pytest.raises(UsageError, match="invalid --event gc: two events have that name"):
        parse_events(["at=1s,name=gc,for=1s", "at=9s,name=gc,run=true"])


def test_the_password_is_redacted():
    assert redact("login -p s3cret && s3cret", ["s3cret", ""]) == "login -p *** && ***"


# -- phases -----------------------------------------------------------------------------------------


def snap(t: float, **rows: tuple[int, int, dict[int, int]]) -> Snapshot:
    keys = {"pull": PULL, "blob": BLOB}
    return Snapshot(t, {keys[k]: RowCounts(*v) for k, v in rows.items()})


def test_percentile_is_locusts_rule():
    times = {10: 98, 3000: 2}
    assert percentile(times, 100, 0.5) == 10
    assert percentile(times, 100, 0.99) == 3000
    assert percentile(times, 100, 0.98) == 3000  # 2 above it: at most 100 - 98
    assert percentile(times, 100, 0.97) == 10
    assert percentile({}, 0, 0.5) == 0


def test_a_phase_is_the_difference_of_its_snapshots():
    start = snap(10.0, pull=(100, 1, {20: 100}))
    end = snap(14.0, pull=(140, 3, {20: 110, 3000: 30}), blob=(8, 0, {5: 8}))
    rows, reset = between(start, end)
    assert not reset
    pull, blob = rows  # the operations first
    assert (pull.method, pull.name, pull.count, pull.failures) == ("PULL", "image", 40, 2)
    assert (pull.p50_ms, pull.p99_ms, pull.rps) == (3000.0, 3000.0, 10.0)
    assert (blob.row, blob.count, blob.p50_ms, blob.rps) == ("GET /v2/<name>/blobs/<digest>", 8, 5.0, 2.0)


def test_a_stats_reset_counts_from_the_reset_and_says_so():
    rows, reset = between(snap(0.0, pull=(100, 5, {20: 100})), snap(2.0, pull=(10, 0, {30: 10})))
    assert reset and rows[0].count == 10 and rows[0].p50_ms == 30.0


def test_before_during_between_and_after():
    s = [snap(t, pull=(n, 0, {10: n})) for t, n in ((0, 0), (5, 50), (8, 60), (12, 100), (15, 110), (20, 150))]
    windows = [Window("gc", s[1], s[2]), Window("freeze", s[3], s[4])]
    found = phases(s[0], windows, s[5])
    assert [(p.phase, p.name, p.label, p.start, p.end) for p in found] == [
        ("before", None, "before", 0, 5),
        ("during", "gc", "during gc", 5, 8),
        ("between", None, "between gc and freeze", 8, 12),
        ("during", "freeze", "during freeze", 12, 15),
        ("after", None, "after", 15, 20),
    ]
    assert [p.rows[0].count for p in found] == [50, 10, 40, 10, 40]
    assert sum(p.rows[0].count for p in found) == 150


def test_overlapping_windows_leave_no_gap_between_them():
    s = [snap(t, pull=(int(t), 0, {10: int(t)})) for t in (0, 2, 4, 6, 9, 12)]
    windows = [Window("a", s[1], s[3]), Window("b", s[2], s[4])]  # b starts inside a, ends after it
    found = phases(s[0], windows, s[5])
    assert [p.label for p in found] == ["before", "during a", "during b", "after"]
    assert (found[-1].start, found[-1].end) == (9, 12)


def test_the_final_stats_count_in_the_after_phase_over_the_tests_time():
    first, start, end = snap(0.0), snap(2.0, pull=(10, 0, {10: 10})), snap(4.0, pull=(20, 0, {10: 20}))
    final = snap(7.0, pull=(40, 0, {10: 40}))  # the last worker reports, after the stop at 6 s
    after = phases(first, [Window("w", start, end)], final, end=6.0)[-1]
    assert (after.phase, after.end, after.rows[0].count, after.rows[0].rps) == ("after", 6.0, 20, 10.0)


def test_no_window_opened_is_one_phase():
    [only] = phases(snap(0.0), [], snap(3.0, pull=(3, 0, {10: 3})))
    assert (only.phase, only.rows[0].count) == ("before", 3)


def test_what_changed_is_said_in_one_line_per_window():
    s = [
        snap(0.0),
        snap(10.0, pull=(1000, 0, {40: 990, 45: 10})),
        snap(14.0, pull=(1040, 12, {40: 1020, 45: 10, 3100: 10})),
        snap(24.0, pull=(2040, 12, {40: 2000, 45: 30, 3100: 10})),
    ]
    found = phases(s[0], [Window("gc", s[1], s[2])], s[3])
    [line] = change_lines(found)
    assert line == "during gc: PULL image p99 3,100 ms vs 45 ms before (69×), 10.0/s vs 100.0/s, 12 failures (0 before)"
    quiet = phases(s[0], [Window("calm", s[2], s[3])], s[3])
    assert change_lines(quiet)[0].endswith(": no clear change")
    empty = phases(s[0], [Window("stall", s[1], snap(14.0, pull=(1000, 0, {40: 990, 45: 10})))], s[3])
    assert change_lines(empty) == ["during stall: no request ended in its 4.0 s"]
