"""Which rows the charts over time draw: the busiest by requests over the run, not by how often a
row appears (found in CI: a pull-and-push run drew the push rows only, each present at every tick,
and left out the blob GETs that carried the pulls)."""

import pytest

from regload.locust.timeline import Point
from regload.locust.timeline_chart import ROWS_SHOWN, _client_rows, _server_rows

pytestmark = pytest.mark.unit

URL = "http://127.0.0.1:5001/metrics"


def _point(t: float, client: dict, server: dict) -> Point:
    return Point(t, 0.0, 0.0, 0, 0, 0, client=client, server={URL: {"rows": server}})


def test_the_busiest_rows_by_requests_are_drawn():
    quiet = {f"HEAD /v2/<name>/row{i}": (1.0, 2.0, 1) for i in range(ROWS_SHOWN)}
    busy = {"GET /v2/<name>/blobs/<digest>": (3.0, 9.0, 50), "PULL image": (20.0, 40.0, 5)}
    points = [_point(1.0, {**quiet, **busy}, {"blob get": (3.0, 8.0, 50)})]
    points += [_point(t, quiet, {f"h{i} head": (1.0, 2.0, 1) for i in range(ROWS_SHOWN)}) for t in (2.0, 3.0)]

    rows = _client_rows(points)
    assert rows[:2] == ["PULL image", "GET /v2/<name>/blobs/<digest>"]  # the operations, then the busiest
    assert len(rows) == 1 + ROWS_SHOWN
    server = _server_rows(points, URL)
    assert server[0] == "blob get" and len(server) == ROWS_SHOWN
