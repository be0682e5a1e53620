"""A web UI page charting the open model's achieved rate against its target, second by second
(Locust's own extension points give tables only): ``/regload/arrivals``, fed by
``/regload/arrivals.json``. Plain HTML and a canvas, no script from elsewhere (load-test hosts
are often offline)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..workload.rates import Schedule, expected_count
from .arrival_report import ArrivalRow

PATH = "/regload/arrivals"


def series(schedule_for: Callable[[str], Schedule | None], rows: list[ArrivalRow]) -> dict[str, Any]:
    """Per operation: the target and the achieved (started) arrivals of each second."""
    out = []
    for row in rows:
        schedule = schedule_for(row.operation)
        seconds = max(len(row.started_per_second), int(row.elapsed))
        target = (
            [round(expected_count(schedule, s + 1) - expected_count(schedule, s), 3) for s in range(seconds)]
            if schedule is not None
            else []
        )
        out.append(
            {
                "operation": row.operation,
                "schedule": row.schedule,
                "target": target,
                "achieved": list(row.started_per_second),
                "dropped": row.dropped,
            }
        )
    return {"operations": out}


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>regload arrivals</title>
<style>body{font-family:sans-serif;margin:2em}canvas{border:1px solid #ccc}
.target{color:#888}.PULL{color:#1f77b4}.PUSH{color:#d62728}</style></head>
<body><h1>Arrivals: achieved vs target, per second</h1>
<p>Dashed: target; solid: arrivals started. <span id="legend"></span></p>
<canvas id="chart" width="1000" height="400"></canvas>
<script>
const colours = {PULL: "#1f77b4", PUSH: "#d62728"};
async function draw() {
  const data = await (await fetch("arrivals.json")).json();
  const c = document.getElementById("chart"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  let n = 1, top = 1;
  for (const op of data.operations) {
    n = Math.max(n, op.target.length, op.achieved.length);
    top = Math.max(top, ...op.target, ...op.achieved);
  }
  const x = i => 40 + i * (c.width - 60) / n, y = v => c.height - 30 - v * (c.height - 50) / top;
  g.fillText(top.toFixed(1) + "/s", 2, y(top) + 4); g.fillText("0", 20, y(0));
  g.fillText(n + " s", c.width - 40, c.height - 10);
  const line = (values, colour, dash) => {
    g.beginPath(); g.setLineDash(dash); g.strokeStyle = colour;
    values.forEach((v, i) => i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))); g.stroke();
  };
  const legend = [];
  for (const op of data.operations) {
    line(op.target, colours[op.operation] || "#000", [6, 4]);
    line(op.achieved, colours[op.operation] || "#000", []);
    legend.push(op.operation + " " + op.schedule + ", " + op.dropped + " dropped");
  }
  document.getElementById("legend").textContent = legend.join("; ");
}
draw(); setInterval(draw, 2000);
</script></body></html>
"""
