"""Locust entry point: select and configure regload's user classes.

    locust -f locustfile.py --host http://registry:5000                       # web UI
    locust -f locustfile.py --host http://registry:5000 --headless -u 200 -r 20 -t 10m PullUser PushUser
    locust -f locustfile.py --host http://registry:5000 --headless -u 50 -t 5m --trace trace.json TraceUser
    locust -f locustfile.py --host http://registry:5000 --headless -u 500 -r 500 -t 5m --storm-every 60s StormUser

The classes live in ``regload.locust``; their options (``--upload-mode``, ``--push-layer-size``,
…) are listed in docs/reference/options.md and appear in the web UI (Locust's ``--help`` is
printed before the locustfile is loaded, so it does not show them). ``TraceUser`` is offered only
when ``--trace`` is on the command line, and ``StormUser`` only when it is named (or a ``--storm-``
option given, or on a worker, whose master names the classes): a run that names no class would
otherwise give them a share of the users.
"""

import sys

from regload.locust import PullUser, PushUser

__all__ = ["PullUser", "PushUser"]

if any(arg == "--trace" or arg.startswith("--trace=") for arg in sys.argv):
    from regload.locust import TraceUser

    __all__ += ["TraceUser"]

if any(arg in ("StormUser", "--worker") or arg.startswith("--storm-") for arg in sys.argv):
    from regload.locust import StormUser

    __all__ += ["StormUser"]
