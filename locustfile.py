"""Locust entry point: select and configure regload's user classes.

    locust -f locustfile.py --host http://registry:5000                       # web UI
    locust -f locustfile.py --host http://registry:5000 --headless -u 200 -r 20 -t 10m PullUser PushUser

The classes live in ``regload.locust``; options (``--upload-mode``, ``--push-layer-size``, …)
are listed by ``locust -f locustfile.py --help`` and appear in the web UI.
"""

from regload.locust import PullUser, PushUser

__all__ = ["PullUser", "PushUser"]
