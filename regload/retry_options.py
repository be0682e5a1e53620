"""The retry options, shared by the command line and the Locust harness (same names in both)."""

from __future__ import annotations

from typing import Any

from .retry import RetryPolicy


def add_retry_arguments(group: Any) -> None:
    """``--retries``, ``--retry-backoff``, ``--retry-max-wait``, ``--ignore-retry-after`` on an
    argparse group or parser (Locust's parser takes the same calls)."""
    group.add_argument(
        "--retries",
        type=int,
        default=0,
        metavar="N",
        help="send a request again up to N times after 429/502/503/504 or a connection failure (default 0)",
    )
    group.add_argument(
        "--retry-backoff",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="wait before the first retry, doubled for each next one (default 1)",
    )
    group.add_argument(
        "--retry-max-wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="longest wait before a retry, Retry-After included (default 30)",
    )
    group.add_argument(
        "--ignore-retry-after",
        action="store_true",
        default=False,
        help="wait the backoff even when the registry sends Retry-After",
    )


def retry_policy(options: Any) -> RetryPolicy:
    """The policy from parsed options (missing ones take the defaults: no retries)."""

    def get(name: str, default: Any) -> Any:
        value = getattr(options, name, None)
        return default if value is None else value

    return RetryPolicy(
        retries=int(get("retries", 0)),
        backoff=float(get("retry_backoff", 1.0)),
        max_wait=float(get("retry_max_wait", 30.0)),
        honour_retry_after=not get("ignore_retry_after", False),
    )
