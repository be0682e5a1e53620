"""A capacity step's window in one process, with a background rate of another kind beside the
searched one: ``python -m tests.support.capacity_window`` prints the closed window as JSON (run
in a child: importing Locust patches the interpreter for gevent)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from regload.locust.capacity_run import CapacityRun
from regload.locust.options import settings_from
from regload.workload.open_model import ArrivalCounts


def main() -> None:
    options = SimpleNamespace(find_capacity="pull", push_rate="1", check_percentile=["PULL image:p99<1000"])
    searched = SimpleNamespace(total=ArrivalCounts())
    background = SimpleNamespace(total=ArrivalCounts(scheduled=50, started=50))
    open_model = SimpleNamespace(schedules={"PULL": searched, "PUSH": background}, users_by_kind=lambda _: {})
    run = SimpleNamespace(
        settings=settings_from(options), open_model=open_model, environment=SimpleNamespace(runner=None)
    )
    capacity = CapacityRun(run)  # type: ignore[arg-type]
    capacity.start_test()
    capacity.apply({"action": "open", "step": 1})
    searched.total.scheduled = searched.total.started = 7
    background.total.scheduled = background.total.started = 80
    print(json.dumps(capacity.apply({"action": "close", "step": 1})))


if __name__ == "__main__":
    main()
