"""This process's replay of ``--trace``: the trace read once per files, window and prefix, its
schedule at ``--trace-speed``, and the client its warm-up uses (the replay itself:
``regload.workload.trace.replay``)."""

from __future__ import annotations

from typing import Any

from ..client import NULL_OBSERVER, RegistryClient
from ..reference import Registry
from ..wiring.connect import make_client
from ..workload.trace.replay import Replay, TraceSchedule
from .options import LoadSettings

_replays: dict[tuple[Any, ...], Replay] = {}


def replay_for(settings: LoadSettings) -> Replay | None:
    """This process's replay of ``--trace`` (read once per files and window), or None."""
    if not settings.trace_files:
        return None
    key = (settings.trace_files, settings.trace_window, settings.repo_prefix)
    replay = _replays.get(key)
    if replay is None:
        _replays.clear()
        replay = _replays[key] = Replay.load(
            settings.trace_files, settings.trace_window, settings.repo_prefix, settings.push_layer_size
        )
    return replay


def trace_schedule(settings: LoadSettings) -> TraceSchedule | None:
    """The replay's schedule at ``--trace-speed``."""
    replay = replay_for(settings)
    return None if replay is None else replay.schedule(settings.trace_speed)


def warm_up_client(settings: LoadSettings, host: str, transport: Any = None) -> RegistryClient:
    return make_client(Registry.from_url(host), settings.client_settings(), observer=NULL_OBSERVER, transport=transport)
