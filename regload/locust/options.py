"""regload's Locust options: the groups of ``regload.options.groups`` on Locust's parser (its web
form shows the options marked ``web``, in the groups' order; the master sends every option to
its workers with each spawn message), and the settings a run reads from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..auth import Credentials
from ..flows.pull import PullOptions
from ..flows.push import PushOptions
from ..options import groups as g
from ..options.spec import LOCUST
from ..profiles import ClientProfile
from ..reference import Registry, parse_reference
from ..wiring.connect import ClientSettings
from ..workload.nodes import NodeSpec
from ..workload.platforms import PlatformMix
from ..workload.pool import PoolImage
from ..workload.pool_layout import PoolSpec
from ..workload.rates import Schedule


def add_arguments(parser: Any) -> None:
    for group in g.GROUPS:
        group.add_to(parser, LOCUST)


@dataclass(frozen=True)
class LoadSettings:
    """The options a run reads, checked once per test, as the groups' values."""

    profile: ClientProfile
    client: ClientSettings
    pull: PullOptions
    platforms: PlatformMix
    push: PushOptions
    images: g.Images
    pool: g.Pool
    rates: g.Rates
    nodes: NodeSpec
    trace: g.Traces
    checks: g.Checks
    capacity: g.Capacity
    metrics: g.Metrics
    exposition: g.Exposition
    events: g.Events
    storms: g.Storms
    token_cache: str
    connection_backoff: float
    audit_file: str | None

    def repository(self, index: int) -> str:
        return self.images.repository(index)

    def rate(self, kind: str) -> Schedule | None:
        """The open model's schedule of ``PULL`` or ``PUSH``, or None for a closed loop."""
        return self.rates.of(kind)

    def pool_spec(self) -> PoolSpec:
        """The pull pool's images, as ``--pull-pool-…``, ``--pool-…`` and ``--layer-gzip-ratio`` say."""
        pool = self.pool
        return PoolSpec(pool.layers, pool.layer_size, pool.families, pool.base_layers, self.images.gzip_ratio)

    def pool_images(self, registry: Registry) -> tuple[list[PoolImage], list[PoolImage]]:
        """The seeded images (index order: the popularity rank) and the ``--pull-image`` ones, as
        every process computes them."""
        spec = self.pool_spec()
        seeded = [PoolImage(self.repository(i), spec.tag(i)) for i in range(self.pool.size)]
        named = [parse_reference(text, registry=registry) for text in self.pool.named]
        return seeded, [PoolImage(ref.repository, ref.reference) for ref in named]

    def __repr__(self) -> str:  # nothing secret: the client's repr hides the password
        return f"LoadSettings(profile={self.profile.name!r}, client={self.client!r}, ...)"


def settings_from(options: Any) -> LoadSettings:
    """Settings from Locust's parsed options (missing attributes take the defaults)."""
    chosen = g.chosen_profile(options)
    pull, push = g.pull_options(options, chosen), g.push_options(options, chosen)
    username = g.text(options, g.REGISTRY, "--registry-username")
    password = g.REGISTRY["--registry-password"].given(options) or ""
    credentials = Credentials(username, password) if username else None
    # --host is always a URL the user wrote: http:// there is plain HTTP asked for.
    client = g.client_settings(
        options, chosen, credentials, plain_http=True, connections_per_host=max(pull.jobs, push.jobs) + 1
    )
    rates, checks = g.rates(options), g.checks(options)
    return LoadSettings(
        profile=chosen,
        client=client,
        pull=pull,
        platforms=g.pull_platforms(options),
        push=push,
        images=g.images(options),
        pool=g.pool(options),
        rates=rates,
        nodes=g.nodes(options),
        trace=g.traces(options),
        checks=checks,
        capacity=g.capacity(options, rates, checks),
        metrics=g.metrics(options),
        exposition=g.exposition(options),
        events=g.events(options),
        storms=g.storms(options),
        token_cache=g.text(options, g.USERS, "--token-cache"),
        connection_backoff=max(0.0, g.number(options, g.USERS, "--connection-backoff")),
        audit_file=g.text(options, g.PUSH, "--audit-file") or None,
    )
