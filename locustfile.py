"""Locust entry point: select and configure regload's user classes.

    locust -f locustfile.py --host http://registry:5000                       # web UI
    locust -f locustfile.py --host http://registry:5000 --headless -u 200 -r 20 -t 10m PullUser PushUser

The classes live in ``regload.locust``; their options (``--upload-mode``, ``--push-layer-size``,
…) are listed in the README and appear in the web UI (Locust's ``--help`` is printed before the
locustfile is loaded, so it does not show them).
"""

from regload.locust import PullUser, PushUser

__all__ = ["PullUser", "PushUser"]
