"""What one Locust process holds for all its users: the settings parsed from the options, the
pull pool, the shared token cache and the audit logs. Listeners (``hooks``), seeding and users
read it here; nothing in it imports a user class."""

from __future__ import annotations

from typing import Any

from gevent.event import Event

from ..audit import AuditLog
from ..auth import TokenCache
from ..workload.fresh import FreshQueue
from ..workload.nodes import Node, Nodes
from ..workload.open_model import ArrivalCounts, Arrivals, Share
from ..workload.pool import ImagePool
from ..workload.rates import Schedule, ShapeRate
from .options import LoadSettings, settings_from

SHARED_TOKENS = TokenCache()  # --token-cache shared: one cache for the users of this process
POOL = ImagePool()
POOL_READY = Event()  # set once seeding ended, whether it succeeded (POOL.error says)
FRESH = FreshQueue()  # --pull-after-push: pushed images a PullUser pulls once, when due

OPEN: dict[str, Arrivals] = {}  # the open model's schedules of this process, by kind
CLOSED: set[str] = set()  # the kinds found to have no rate in this test: closed loops
SHARE = Share()  # this process's part of the total rates (a master tells its workers)
WORKER_COUNTS: dict[str, ArrivalCounts] = {}  # on a master: what its workers counted, by kind
_settings: dict[int, LoadSettings] = {}
_audit_logs: dict[str, AuditLog] = {}
_nodes: list[Nodes] = []  # this test's nodes (--node-users): one ``Nodes`` once a user asked


def settings_for(environment: Any) -> LoadSettings:
    """Settings parsed once per environment (workers get the master's options at spawn)."""
    key = id(environment.parsed_options)
    if key not in _settings:
        _settings[key] = settings_from(environment.parsed_options)
    return _settings[key]


def schedule_for(environment: Any, kind: str) -> Schedule | None:
    """The open model's schedule of ``kind`` (``PULL``/``PUSH``): the ``arrival_shape`` of a user
    class of that kind when one gives it, else the options' rate; None for a closed loop."""
    for cls in environment.user_classes or ():
        shape = getattr(cls, "arrival_shape", None)
        if shape is not None and getattr(cls, "kind", None) == kind:
            return ShapeRate(shape)
    return settings_for(environment).rate(kind)


def node_for(settings: LoadSettings) -> Node | None:
    """The node of a new PullUser (``--node-users``), or None when pulls are not grouped."""
    if not _nodes:
        _nodes.append(Nodes(settings.nodes))
    return _nodes[0].join()


def token_cache(mode: str) -> TokenCache:
    """The token cache of a new user for ``--token-cache``: shared, its own, or none."""
    if mode == "shared":
        return SHARED_TOKENS
    return TokenCache(enabled=mode != "off")


def audit_log(path: str) -> AuditLog:
    """The process's audit log for ``path``, shared by its users (the file opens at the first line)."""
    if path not in _audit_logs:
        _audit_logs[path] = AuditLog(path)
    return _audit_logs[path]


def reset_for_test() -> None:
    """A new test starts: an empty pool not ready yet, and options read again (a worker gets
    the options of each run with its spawn message; the web UI may change them)."""
    POOL.reset()
    POOL_READY.clear()
    FRESH.reset()
    _settings.clear()
    for arrivals in OPEN.values():
        arrivals.stop()
    OPEN.clear()
    CLOSED.clear()
    WORKER_COUNTS.clear()
    _nodes.clear()
