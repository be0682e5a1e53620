"""regload in Locust's web UI: the Throughput, Arrivals, Capacity, Registry and Events tabs, fed
with the stats the UI polls, the arrivals and capacity chart pages (``charts``), and no secret in
any page (``web_secrets``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from . import (
    arrival_chart,
    arrival_report,
    capacity_report,
    charts,
    events_report,
    registry_report,
    throughput,
    timeline_chart,
)
from .web_secrets import protect_secrets

if TYPE_CHECKING:
    from .run import LoadRun

CAPACITY_PATH = "/regload/capacity"


def extend_web_ui(run: LoadRun) -> None:
    from flask import request

    environment = run.environment
    web_ui = environment.web_ui
    # The page renders its options with Jinja's tojson, which sorts keys by default: the form would
    # list them alphabetically, not in the groups' order (what a user changes most first).
    web_ui.app.jinja_env.policies["json.dumps_kwargs"] = {"sort_keys": False}
    if environment.parsed_options is not None:
        protect_secrets(web_ui, environment.parsed_options)
    web_ui.template_args["extended_tabs"] = [
        {"title": "Throughput", "key": "throughput"},
        {"title": "Arrivals", "key": "arrivals"},
        {"title": "Capacity", "key": "capacity"},
        {"title": "Registry", "key": "registry"},
        {"title": "Events", "key": "events"},
    ]
    web_ui.template_args["extended_tables"] = [
        _table("throughput", throughput.UI_COLUMNS),
        _table("arrivals", arrival_report.UI_COLUMNS),
        _table("capacity", capacity_report.UI_COLUMNS),
        _table("registry", registry_report.UI_COLUMNS),
        _table("events", events_report.UI_COLUMNS),
    ]
    app, auth = web_ui.app, web_ui.auth_required_if_enabled

    def arrival_series() -> dict[str, Any]:
        return arrival_chart.series(run.open_model.schedule_for, run.open_model.rows())

    routes = {
        charts.SCRIPT_PATH: lambda: (charts.plotly_js(), 200, {"Content-Type": "text/javascript"}),
        arrival_chart.PATH: lambda: charts.page("regload arrivals", "arrivals.figure.json"),
        arrival_chart.PATH + ".json": arrival_series,
        arrival_chart.PATH + ".figure.json": lambda: arrival_chart.figure(arrival_series()),
        CAPACITY_PATH: lambda: charts.page("regload capacity", "capacity.figure.json"),
        CAPACITY_PATH + ".json": lambda: capacity_report.as_dict(run.capacity),
        CAPACITY_PATH + ".figure.json": lambda: capacity_report.knee_figure(run.capacity),
        timeline_chart.PATH: lambda: charts.page("regload: the run over time", "timeline.figure.json"),
        timeline_chart.PATH + ".figure.json": lambda: timeline_chart.figure_json(run),
    }
    for path, view in routes.items():
        app.add_url_rule(path, f"regload{path.replace('/', '_')}", auth(view))

    @web_ui.app.after_request
    def _add_throughput(response: Any) -> Any:
        if request.path.endswith("/stats/requests") and response.is_json and environment.runner is not None:
            data = response.get_json()
            rows = throughput.ui_rows(throughput.throughput(environment.runner.stats))
            arrivals = arrival_report.ui_rows(run.open_model.rows())
            data["extended_stats"] = [
                {"key": "throughput", "data": rows},
                {"key": "arrivals", "data": arrivals},
                {"key": "capacity", "data": capacity_report.ui_rows(run.capacity)},
                {"key": "registry", "data": registry_report.ui_rows(registry_report.server_reports(run))},
                {"key": "events", "data": events_report.ui_rows(run.windows)},
            ]
            response.set_data(json.dumps(data))
        return response


def _table(key: str, columns: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """A table of the web UI (Locust's ``extended_tables``): its rows' keys and column titles."""
    return {"key": key, "structure": [{"key": k, "title": title} for k, title in columns]}
