"""The retry options, shared by the command line and the Locust harness (same names in both).
Their defaults are ``RetryPolicy``'s own (no retries)."""

from __future__ import annotations

from typing import Any

from ..retry import NO_RETRIES, RetryPolicy

DEFAULTS = NO_RETRIES


def add_retry_arguments(group: Any) -> None:
    """``--retries``, ``--retry-backoff``, ``--retry-max-wait``, ``--ignore-retry-after`` on an
    argparse group or parser (Locust's parser takes the same calls)."""
    group.add_argument(
        "--retries",
        type=int,
        default=DEFAULTS.retries,
        metavar="N",
        help="send a request again up to N times after 429/502/503/504 or a connection failure"
        f" (default {DEFAULTS.retries})",
    )
    group.add_argument(
        "--retry-backoff",
        type=float,
        default=DEFAULTS.backoff,
        metavar="SECONDS",
        help=f"wait before the first retry, doubled for each next one (default {DEFAULTS.backoff:g})",
    )
    group.add_argument(
        "--retry-max-wait",
        type=float,
        default=DEFAULTS.max_wait,
        metavar="SECONDS",
        help=f"longest wait before a retry, Retry-After included (default {DEFAULTS.max_wait:g})",
    )
    group.add_argument(
        "--ignore-retry-after",
        action="store_true",
        default=not DEFAULTS.honour_retry_after,
        help="wait the backoff even when the registry sends Retry-After",
    )


def retry_policy(options: Any) -> RetryPolicy:
    """The policy from parsed options (missing ones take the defaults: no retries)."""

    def get(name: str, default: Any) -> Any:
        value = getattr(options, name, None)
        return default if value is None else value

    return RetryPolicy(
        retries=int(get("retries", DEFAULTS.retries)),
        backoff=float(get("retry_backoff", DEFAULTS.backoff)),
        max_wait=float(get("retry_max_wait", DEFAULTS.max_wait)),
        honour_retry_after=not get("ignore_retry_after", not DEFAULTS.honour_retry_after),
    )
