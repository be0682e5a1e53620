"""Every option of regload, by group, and the values each group builds.

The groups the command line and Locust share (the registry connection, the client, retries,
pulls, pushes) build the same frozen values in both (``ClientSettings``, ``RetryPolicy``,
``PullOptions``, ``PushOptions``) with the same checks; the Locust harness's own groups (pushed
images, the pull pool, rates, nodes, traces, users, checks) build theirs. The order of the
groups, and of the options in them, is the order of Locust's web form: what a user changes most
between runs first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..auth import Credentials
from ..errors import RegloadError, UsageError
from ..flows.pull import PullOptions
from ..flows.push import UPLOAD_MODES, PushOptions
from ..profiles import PROFILES, REGLOAD, ClientProfile, profile
from ..retry import NO_RETRIES, RetryPolicy
from ..sources.gzip_layer import check_ratio
from ..units import parse_size
from ..workload.fresh import PullAfterPush
from ..workload.platforms import PlatformMix
from ..workload.popularity import Popularity, parse_popularity
from ..workload.rates import ARRIVALS, Schedule, parse_rate
from ..workload.sizes import SizeDistribution, parse_size_distribution
from ..workload.trace.records import Window
from .spec import CLI_ONLY, LOCUST_ONLY, Group, Option

if TYPE_CHECKING:  # the command line's --help and usage errors load no network stack (nor gevent)
    from ..wiring.connect import ClientSettings
    from ..workload.maintenance import Event
    from ..workload.nodes import NodeSpec

MAX_JOBS = 64
PROFILES_UPLOAD_MODE = "profile"  # a select's default must be one of its choices (Locust's web form)
TOKEN_CACHE_MODES = ("shared", "user", "off")
_PULL, _PUSH = PullOptions(), PushOptions()
_SIZES = (
    "SIZE, MIN-MAX (uniform), lognormal:median=SIZE,p90=SIZE[,max=SIZE], empirical:PATH (one size per line,"
    " or PERCENT SIZE lines), or a preset: dockerhub-2019, ibm-fast18"
)

# -- the groups both front ends have ----------------------------------------------------------------

REGISTRY = Group(
    "registry connection",
    (
        Option(
            "--registry",
            "registry base URL, may include a path prefix (http://host:8081/repository/docker); REFERENCE is"
            " then repo[:tag|@digest]",
            metavar="URL",
            fronts=CLI_ONLY,
        ),
        Option("--plain-http", "use HTTP even for a non-loopback registry", kind="flag", fronts=CLI_ONLY),
        Option(
            "--registry-username",
            "registry user (or REGLOAD_USERNAME)",
            short=("-u",),
            deprecated=("--username",),
            env="REGLOAD_USERNAME",
            web=True,
        ),
        Option(
            "--registry-password",
            "registry password: prefer REGLOAD_PASSWORD (not seen by ps) or --password-stdin; never shown by"
            " the web UI",
            short=("-p",),
            deprecated=("--password",),
            env="REGLOAD_PASSWORD",
            secret=True,
            web=True,
        ),
        Option("--password-stdin", "read the password from standard input", kind="flag", fronts=CLI_ONLY),
        Option("--registry-ca-cert", "PEM file of CA certificates to trust", metavar="FILE", deprecated=("--ca-cert",)),
        Option(
            "--registry-insecure",
            "do not verify the registry's TLS certificate",
            kind="flag",
            deprecated=("--insecure",),
        ),
        Option(
            "--registry-http2",
            "use the httpx transport with HTTP/2 (default: HTTP/1.1 on gevent sockets)",
            kind="flag",
            deprecated=("--http2",),
            dest_name="registry_http_2",  # the web form posts registryHttp2 back as registry_http_2
        ),
        Option(
            "--registry-timeout",
            "network read timeout (default 60)",
            default="60",
            metavar="SECONDS",
            deprecated=("--timeout",),
        ),
        Option(
            "--registry-header",
            "add a header to every registry request (repeatable)",
            kind="append",
            metavar="'NAME: VALUE'",
            short=("-H",),
            deprecated=("--header",),
        ),
    ),
)

CLIENT = Group(
    "client",
    (
        Option(
            "--client-profile",
            "send what this client sends: its requests, headers, concurrency and User-Agent; options given"
            " explicitly override it",
            default=REGLOAD.name,
            choices=tuple(PROFILES),
            web=True,
        ),
        Option("--user-agent", "the User-Agent to send (default: the client profile's)", metavar="TEXT", web=True),
    ),
)

RETRIES = Group(
    "retries (default: none, every failure is reported)",
    (
        Option(
            "--retries",
            "send a request again up to N times after 429/502/503/504 or a connection failure"
            f" (default {NO_RETRIES.retries})",
            default=str(NO_RETRIES.retries),
            metavar="N",
        ),
        Option(
            "--retry-backoff",
            f"wait before the first retry, doubled for each next one (default {NO_RETRIES.backoff:g})",
            default=f"{NO_RETRIES.backoff:g}",
            metavar="SECONDS",
        ),
        Option(
            "--retry-max-wait",
            f"longest wait before a retry, Retry-After included (default {NO_RETRIES.max_wait:g})",
            default=f"{NO_RETRIES.max_wait:g}",
            metavar="SECONDS",
        ),
        Option("--ignore-retry-after", "wait the backoff even when the registry sends Retry-After", kind="flag"),
    ),
)

PULL = Group(
    "pull",
    (
        Option(
            "--pull-jobs",
            f"layers a pull fetches at once, 1-{MAX_JOBS} (default: the client profile's; regload {_PULL.jobs})",
            metavar="N",
            short=("-j",),
            deprecated=("--jobs",),
            web=True,
        ),
        Option(
            "--pull-platform",
            "the platform a pull takes from an index: os/arch[/variant], or a weighted mix such as"
            " linux/amd64:3,linux/arm64:1 (default linux/amd64)",
            metavar="PLATFORMS",
            deprecated=("--platform",),
        ),
        Option("--pull-head-first", "HEAD the manifest, then GET it by digest", kind="flag"),
        Option(
            "--no-verify",
            "count the layers' bytes without checking their digests (the manifest and config are always checked)",
            kind="flag",
        ),
    ),
)

PUSH = Group(
    "push",
    (
        Option(
            "--upload-mode",
            f"how blobs are uploaded: the client profile's (regload's is {_PUSH.upload_mode}), or a mode",
            default=PROFILES_UPLOAD_MODE,
            choices=(PROFILES_UPLOAD_MODE, *UPLOAD_MODES),
            web=True,
        ),
        Option(
            "--push-jobs",
            f"blobs a push uploads at once, 1-{MAX_JOBS} (default: the client profile's; regload {_PUSH.jobs})",
            metavar="N",
            short=("-j",),
            deprecated=("--jobs",),
            web=True,
        ),
        Option(
            "--chunk-size",
            "chunk size for --upload-mode chunked",
            default=f"{_PUSH.chunk_size >> 20}MiB",
            metavar="SIZE",
        ),
        Option("--no-check-existing", "upload blobs without a HEAD first", kind="flag"),
        Option(
            "--audit-file",
            "append a JSON line per image pushed (see verify; every Locust process of a machine appends to PATH)",
            metavar="PATH",
        ),
    ),
)

# -- the Locust harness's own -------------------------------------------------------------------------

RATES = Group(
    "open model",
    (
        Option(
            "--pull-rate",
            "open model: PULLs per second in total (all processes), or stages 30s:5,2m:50; empty: closed loop",
            metavar="RATE",
            fronts=LOCUST_ONLY,
            web=True,
        ),
        Option(
            "--push-rate",
            "open model: PUSHes per second in total, or stages; empty: closed loop",
            metavar="RATE",
            fronts=LOCUST_ONLY,
            web=True,
        ),
        Option(
            "--rate-stages",
            "open model for both classes unless --pull-rate/--push-rate gives one its own: DURATION:RATE,… ramps"
            " linearly to each RATE (30s:5,2m:50,1m:50,30s:0)",
            metavar="STAGES",
            fronts=LOCUST_ONLY,
            web=True,
        ),
        Option(
            "--arrivals",
            "open model: poisson (exponential gaps) or uniform (evenly spaced)",
            default="poisson",
            choices=ARRIVALS,
            fronts=LOCUST_ONLY,
            web=True,
        ),
    ),
)

IMAGES = Group(
    "pushed images",
    (
        Option("--push-layers", "layers per pushed image", default="3", metavar="N", fronts=LOCUST_ONLY, web=True),
        Option(
            "--push-layer-size",
            f"layer sizes of pushed images: {_SIZES}",
            default="1MiB",
            metavar="SIZES",
            fronts=LOCUST_ONLY,
            web=True,
        ),
        Option(
            "--repos",
            "spread images over this many repositories",
            default="4",
            metavar="N",
            fronts=LOCUST_ONLY,
            web=True,
        ),
        Option(
            "--repo-prefix",
            "repository name prefix (repositories are PREFIX-0 … PREFIX-N-1)",
            default="regload/load",
            fronts=LOCUST_ONLY,
        ),
        Option(
            "--layer-gzip-ratio",
            "synthetic layers are gzip streams of the layer size whose tar compresses by R (1-50; Docker Hub's"
            " median is ~2.6); empty or 0: uncompressed tars of noise",
            metavar="R",
            fronts=LOCUST_ONLY,
        ),
    ),
)

POOL = Group(
    "pull pool",
    (
        Option(
            "--pull-pool-size",
            "synthetic images pushed at test start for PullUser",
            default="8",
            metavar="N",
            fronts=LOCUST_ONLY,
            web=True,
        ),
        Option("--pull-pool-layers", "layers per pool image", default="3", metavar="N", fronts=LOCUST_ONLY, web=True),
        Option(
            "--pull-pool-layer-size",
            f"layer sizes of pool images: {_SIZES}",
            default="1MiB",
            metavar="SIZES",
            fronts=LOCUST_ONLY,
            web=True,
        ),
        Option(
            "--pull-popularity",
            "which pool image a pull picks: uniform, or zipf:S (the i-th pool image, from 0, with weight 1/(i+1)^S)",
            default="uniform",
            metavar="POPULARITY",
            fronts=LOCUST_ONLY,
        ),
        Option(
            "--pull-image",
            "pull this existing image (repo:tag on --host); repeatable",
            kind="append",
            metavar="REF",
            fronts=LOCUST_ONLY,
        ),
        Option("--pull-pushed", "images pushed during the run join the pull pool", kind="flag", fronts=LOCUST_ONLY),
        Option(
            "--pull-after-push",
            "a pushed image is pulled once by a PullUser, DELAY later, with probability P (e.g. 0.3:2s)",
            metavar="P[:DELAY]",
            fronts=LOCUST_ONLY,
        ),
        Option(
            "--pool-families",
            "pool image i belongs to family i%%F and shares its family's base layers (0: independent images)",
            default="0",
            metavar="F",
            fronts=LOCUST_ONLY,
        ),
        Option(
            "--pool-base-layers",
            "layers of each family's base stack (the lowest is shared by all families), below the image's own",
            default="2",
            metavar="N",
            fronts=LOCUST_ONLY,
        ),
        Option(
            "--pool-seed-jobs",
            "pool images pushed at once while seeding",
            default="16",
            metavar="N",
            fronts=LOCUST_ONLY,
        ),
    ),
)

USERS = Group(
    "users",
    (
        Option(
            "--token-cache",
            "bearer tokens: shared by the users of a process, per user, or off",
            default="shared",
            choices=TOKEN_CACHE_MODES,
            fronts=LOCUST_ONLY,
            web=True,
        ),
        Option(
            "--connection-backoff",
            "seconds a user waits after an operation failed to reach the registry, or had its credentials"
            " refused (0: retry at once)",
            default="1",
            metavar="SECONDS",
            fronts=LOCUST_ONLY,
        ),
    ),
)

NODES = Group(
    "nodes",
    (
        Option(
            "--node-users",
            "PullUsers per node, whose pulls the node limits as kubelet does (0: no nodes)",
            default="0",
            metavar="K",
            fronts=LOCUST_ONLY,
        ),
        Option(
            "--node-parallel-pulls",
            "pulls a node runs at once (kubelet's maxParallelImagePulls; 1: serializeImagePulls, its default)",
            default="1",
            metavar="N",
            fronts=LOCUST_ONLY,
        ),
    ),
)

TRACE = Group(
    "trace replay",
    (
        Option(
            "--trace",
            "TraceUser replays this IBM-format registry trace (JSON array, .gz too); repeatable: merged by time",
            kind="append",
            metavar="FILE",
            fronts=LOCUST_ONLY,
        ),
        Option(
            "--trace-speed",
            "replay traces this many times faster than recorded (2: in half the time)",
            default="1",
            metavar="X",
            fronts=LOCUST_ONLY,
        ),
        Option(
            "--trace-window",
            "replay only this part of the trace: 60-120, 1m-2m, 30s-",
            metavar="START-END",
            fronts=LOCUST_ONLY,
        ),
    ),
)

CHECKS = Group(
    "checks",
    (
        Option(
            "--check-fail-ratio",
            "exit non-zero when the failure ratio ends above this (e.g. 0.01)",
            metavar="RATIO",
            fronts=LOCUST_ONLY,
            web=True,
        ),
        Option(
            "--check-percentile",
            "exit non-zero when a percentile ends above a limit, e.g. 'PULL image:95<2000'; repeatable",
            kind="append",
            metavar="'TYPE NAME:PCT<MS'",
            fronts=LOCUST_ONLY,
        ),
    ),
)

CAPACITY_MODES = ("off", "pull", "push", "mixed")  # "off" first: the web form's select shows it

CAPACITY = Group(
    "capacity search",
    (
        Option(
            "--find-capacity",
            "search the highest rate of pulls, pushes or both (mixed: in the ratio of --pull-rate to --push-rate)"
            " that passes every --check-percentile and --check-fail-ratio; the run ends with the search",
            default="off",
            choices=CAPACITY_MODES,
            fronts=LOCUST_ONLY,
            web=True,
        ),
        Option(
            "--capacity-start",
            "the search's first rate, operations per second (default 1): it doubles from there",
            default="1",
            metavar="RATE",
            fronts=LOCUST_ONLY,
            web=True,
        ),
        Option(
            "--capacity-precision",
            "stop bisecting when the lowest failing rate is within this share of the best passing one"
            " (default 10 percent)",
            default="10%",
            metavar="PERCENT",
            fronts=LOCUST_ONLY,
        ),
        Option(
            "--capacity-hold",
            "how long each step holds its rate (default 30s)",
            default="30s",
            metavar="DURATION",
            fronts=LOCUST_ONLY,
            web=True,
        ),
        Option(
            "--capacity-settle",
            "the first part of each step, left out of its verdict (default 5s)",
            default="5s",
            metavar="DURATION",
            fronts=LOCUST_ONLY,
        ),
    ),
)

STORM = Group(
    "storms",
    (
        Option(
            "--storm-every",
            "StormUsers: every DURATION one image is pushed (or --storm-image named), then every StormUser is"
            " released at once to pull it (default 60s)",
            default="60s",
            metavar="DURATION",
            fronts=LOCUST_ONLY,
            web=True,
        ),
        Option(
            "--storm-image",
            "pull this existing image in every storm instead of pushing a fresh one (REPO:TAG or REPO@DIGEST)",
            metavar="REF",
            fronts=LOCUST_ONLY,
            web=True,
        ),
        Option(
            "--storm-push-to",
            "push each storm's fresh image to this registry, the upstream of the --host that caches it"
            " (a pull-through cache: each storm is then a cold miss); default: --host",
            metavar="URL",
            fronts=LOCUST_ONLY,
            web=True,
        ),
        Option(
            "--storm-jitter",
            "release each StormUser at a random time within DURATION of the release (default 0: all at once)",
            default="0",
            metavar="DURATION",
            fronts=LOCUST_ONLY,
            web=True,
        ),
        Option("--storm-layers", "layers of each storm's fresh image", default="3", metavar="N", fronts=LOCUST_ONLY),
        Option(
            "--storm-layer-size",
            f"layer sizes of each storm's fresh image: {_SIZES}",
            default="8MiB",
            metavar="SIZES",
            fronts=LOCUST_ONLY,
        ),
    ),
)

METRICS = Group(
    "registry metrics",
    (
        Option(
            "--registry-metrics",
            "scrape the registry's Prometheus metrics at URL during the run and report them beside the client's"
            " (repeatable: a registry and its upstream, replicas; the embedded registry's without asking);"
            " NAME=URL names it, and the storms read the one named upstream",
            kind="append",
            metavar="URL",
            fronts=LOCUST_ONLY,
        ),
        Option(
            "--registry-metrics-interval",
            "seconds between two scrapes, and between two points of the charts over time (default 2)",
            default="2",
            metavar="SECONDS",
            fronts=LOCUST_ONLY,
        ),
    ),
)

EXPOSITION = Group(
    "metrics for Prometheus",
    (
        Option(
            "--metrics-port",
            "serve regload's own metrics for Prometheus at http://HOST:PORT/metrics, on the master or the one process,"
            " for the life of the process (off unless given; the Kubernetes examples use 9646)",
            metavar="PORT",
            fronts=LOCUST_ONLY,
        ),
        Option(
            "--metrics-host",
            "the address --metrics-port listens on (default 0.0.0.0: every interface, as Locust's web UI;"
            " 127.0.0.1 keeps it on this machine)",
            default="0.0.0.0",
            metavar="ADDRESS",
            fronts=LOCUST_ONLY,
        ),
    ),
)

EVENTS = Group(
    "maintenance windows",
    (
        Option(
            "--event",
            "at that time of the test, on the master, run the shell COMMAND (run= comes last and takes the rest of"
            " the text): its window lasts while it runs; for=DURATION instead of run= marks a window without a"
            " command; the stats are split into phases before, during and after each window (repeatable; from"
            " the command line only, never the web form)",
            kind="append",
            metavar="'at=60s,name=gc,run=COMMAND'",
            fronts=LOCUST_ONLY,
        ),
    ),
)

#: Every group, in the web form's order (for Locust) and the reference's.
GROUPS = (
    REGISTRY,
    RATES,
    CAPACITY,
    CLIENT,
    IMAGES,
    POOL,
    PUSH,
    PULL,
    USERS,
    RETRIES,
    NODES,
    TRACE,
    CHECKS,
    STORM,
    METRICS,
    EXPOSITION,
    EVENTS,
)

# -- reading values ---------------------------------------------------------------------------------------


def text(options: Any, group: Group, flag: str) -> str:
    """An option's value as text, stripped ("" when not given: the web form posts empty fields)."""
    value = group[flag].given(options)
    return "" if value is None else str(value).strip()


def whole(options: Any, group: Group, flag: str, low: int, high: int | None = None) -> int:
    value = text(options, group, flag)
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"invalid {flag} {value!r}: expected a whole number") from None
    if number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise UsageError(f"{flag} must be {bound}, not {number}")
    return number


def number(options: Any, group: Group, flag: str) -> float:
    value = text(options, group, flag)
    try:
        return float(value)
    except ValueError:
        raise UsageError(f"invalid {flag} {value!r}: expected a number") from None


def chosen_profile(options: Any) -> ClientProfile:
    return profile(text(options, CLIENT, "--client-profile") or None)


def retry_policy(options: Any) -> RetryPolicy:
    return RetryPolicy(
        retries=whole(options, RETRIES, "--retries", 0),
        backoff=number(options, RETRIES, "--retry-backoff"),
        max_wait=number(options, RETRIES, "--retry-max-wait"),
        honour_retry_after=not RETRIES["--ignore-retry-after"].given(options),
    )


def headers(values: Any) -> tuple[tuple[str, str], ...]:
    """``--registry-header 'Name: value'`` fields."""
    out = []
    for value in values or ():
        name, sep, rest = str(value).partition(":")
        if not sep or not name.strip() or any(c in name for c in " \t\r\n") or "\n" in rest or "\r" in rest:
            raise UsageError(f"invalid header {str(value).split(':')[0]!r}: expected 'Name: value'")
        out.append((name.strip(), rest.strip()))
    return tuple(out)


def client_settings(
    options: Any,
    chosen: ClientProfile,
    credentials: Credentials | None,
    *,
    plain_http: bool,
    connections_per_host: int | None = None,
) -> ClientSettings:
    """How to reach the registry: the registry connection, client and retry groups, with the
    client profile's headers, User-Agent and keep-alive where the options do not say."""
    from ..wiring.connect import ClientSettings

    extra = {"connections_per_host": connections_per_host} if connections_per_host is not None else {}
    user_agent = text(options, CLIENT, "--user-agent") or None  # empty: the web form's unset
    timeout = number(options, REGISTRY, "--registry-timeout")
    if not 0 < timeout < math.inf:
        raise UsageError(f"--registry-timeout must be a number of seconds above 0, not {timeout:g}")
    return ClientSettings(
        credentials=credentials,
        plain_http=plain_http,
        ca_cert=text(options, REGISTRY, "--registry-ca-cert") or None,
        insecure=bool(REGISTRY["--registry-insecure"].given(options)),
        read_timeout=timeout,
        http2=bool(REGISTRY["--registry-http2"].given(options)),
        headers=chosen.with_headers(headers(REGISTRY["--registry-header"].given(options))),
        retry=retry_policy(options),
        user_agent=chosen.user_agent_or(user_agent),
        keep_alive=chosen.keep_alive,
        **extra,
    )


def _jobs(options: Any, group: Group, flag: str) -> int | None:
    """A jobs option: None when not given (the web form posts an empty field), else 1 to 64."""
    return whole(options, group, flag, 1, MAX_JOBS) if text(options, group, flag) else None


def pull_options(options: Any, chosen: ClientProfile) -> PullOptions:
    """A pull: the client profile's, with the options given in place (the platform is picked
    from ``pull_platforms`` per pull)."""
    head_first = True if PULL["--pull-head-first"].given(options) else None
    verify = False if PULL["--no-verify"].given(options) else None
    return chosen.pull_options(jobs=_jobs(options, PULL, "--pull-jobs"), verify=verify, head_first=head_first)


def pull_platforms(options: Any) -> PlatformMix:
    return PlatformMix.parse(text(options, PULL, "--pull-platform"))


def push_options(options: Any, chosen: ClientProfile, mount_from: str | None = None) -> PushOptions:
    mode = text(options, PUSH, "--upload-mode")
    return chosen.push_options(
        upload_mode=None if mode in ("", PROFILES_UPLOAD_MODE) else mode,
        chunk_size=parse_size(text(options, PUSH, "--chunk-size"), "--chunk-size"),
        jobs=_jobs(options, PUSH, "--push-jobs"),
        check_existing=False if PUSH["--no-check-existing"].given(options) else None,
        mount_from=mount_from,
    )


# -- the Locust harness's values --------------------------------------------------------------------------


@dataclass(frozen=True)
class Images:
    """What PushUsers push, and where: ``--push-layers``, ``--push-layer-size``, ``--repos``…"""

    layers: int
    layer_size: SizeDistribution
    repos: int
    prefix: str
    gzip_ratio: float | None  # None: synthetic layers are uncompressed tars

    def repository(self, index: int) -> str:
        return f"{self.prefix}-{index % self.repos}"


def images(options: Any) -> Images:
    return Images(
        layers=max(1, whole(options, IMAGES, "--push-layers", 0)),
        layer_size=parse_size_distribution(text(options, IMAGES, "--push-layer-size"), "--push-layer-size"),
        repos=whole(options, IMAGES, "--repos", 1),
        prefix=text(options, IMAGES, "--repo-prefix").rstrip("/"),
        gzip_ratio=_gzip_ratio(text(options, IMAGES, "--layer-gzip-ratio")),
    )


def _gzip_ratio(value: str) -> float | None:
    """--layer-gzip-ratio: None (empty, 0 or 1: uncompressed layers), else a ratio from 1 to 50."""
    try:
        ratio = float(value) if value else 0.0
    except ValueError:
        raise UsageError(f"--layer-gzip-ratio must be a number, not {value!r}") from None
    if ratio in (0.0, 1.0):
        return None
    try:
        return check_ratio(ratio)
    except UsageError as e:
        raise UsageError(f"--layer-gzip-ratio: {e}") from None


@dataclass(frozen=True)
class Pool:
    """The pull pool: its seeded images, the named ones, and how pulls pick among them."""

    size: int
    layers: int
    layer_size: SizeDistribution
    popularity: Popularity
    named: tuple[str, ...]  # --pull-image
    pushed_join: bool  # --pull-pushed
    after_push: PullAfterPush | None
    families: int
    base_layers: int
    seed_jobs: int


def pool(options: Any) -> Pool:
    return Pool(
        size=whole(options, POOL, "--pull-pool-size", 0),
        layers=whole(options, POOL, "--pull-pool-layers", 0),
        layer_size=parse_size_distribution(text(options, POOL, "--pull-pool-layer-size"), "--pull-pool-layer-size"),
        popularity=parse_popularity(text(options, POOL, "--pull-popularity"), "--pull-popularity"),
        named=tuple(POOL["--pull-image"].given(options) or ()),
        pushed_join=bool(POOL["--pull-pushed"].given(options)),
        after_push=PullAfterPush.parse(text(options, POOL, "--pull-after-push")),
        families=whole(options, POOL, "--pool-families", 0),
        base_layers=whole(options, POOL, "--pool-base-layers", 0),
        seed_jobs=whole(options, POOL, "--pool-seed-jobs", 1),
    )


@dataclass(frozen=True)
class Rates:
    """The open model's schedules (None: a closed loop) and how arrivals are spaced."""

    pull: Schedule | None  # None: a closed loop
    push: Schedule | None
    arrivals: str

    def of(self, kind: str) -> Schedule | None:
        return self.pull if kind == "PULL" else self.push


def rates(options: Any) -> Rates:
    stages = text(options, RATES, "--rate-stages")

    def schedule(flag: str) -> Schedule | None:
        own = text(options, RATES, flag)
        if own:
            return parse_rate(own, flag)
        return parse_rate(stages, "--rate-stages") if stages else None

    return Rates(schedule("--pull-rate"), schedule("--push-rate"), text(options, RATES, "--arrivals"))


def nodes(options: Any) -> NodeSpec:
    from ..workload.nodes import NodeSpec

    return NodeSpec(
        whole(options, NODES, "--node-users", 0),
        whole(options, NODES, "--node-parallel-pulls", 1),
    )


@dataclass(frozen=True)
class Traces:
    files: tuple[str, ...]
    speed: float
    window: Window


def traces(options: Any) -> Traces:
    value = text(options, TRACE, "--trace-speed")
    try:
        speed = float(value)
    except ValueError:
        speed = 0.0
    if not 0 < speed < math.inf:
        raise UsageError(f"invalid --trace-speed {value!r}: expected a factor above 0, e.g. 2 or 0.5")
    window = text(options, TRACE, "--trace-window")
    return Traces(tuple(TRACE["--trace"].given(options) or ()), speed, Window.parse(window) if window else Window())


@dataclass(frozen=True)
class Checks:
    fail_ratio: float | None
    percentiles: tuple[str, ...]


def checks(options: Any) -> Checks:
    ratio = text(options, CHECKS, "--check-fail-ratio")
    try:
        fail_ratio = float(ratio) if ratio else None
    except ValueError:
        raise UsageError(f"invalid --check-fail-ratio {ratio!r}: expected a ratio such as 0.01") from None
    return Checks(fail_ratio, tuple(CHECKS["--check-percentile"].given(options) or ()))


@dataclass(frozen=True)
class Capacity:
    """The capacity search (``--find-capacity``), or ``mode`` None for none."""

    mode: str | None  # pull, push or mixed
    start: float
    precision: float  # 0.1 for 10 %
    hold: float  # seconds
    settle: float
    weights: tuple[tuple[str, float], ...] = ()  # (kind, share of the total rate)

    def rates(self, total: float) -> dict[str, float]:
        """Each kind's rate for ``total`` operations/s."""
        return {kind: total * weight for kind, weight in self.weights}


def capacity(options: Any, rates: Rates, checks: Checks) -> Capacity:
    from ..units import parse_duration
    from ..workload.rates import ConstantRate

    mode = text(options, CAPACITY, "--find-capacity") or "off"
    if mode not in CAPACITY_MODES:
        raise UsageError(f"invalid --find-capacity {mode!r}: choose {', '.join(CAPACITY_MODES)}")
    start = number(options, CAPACITY, "--capacity-start")
    if not 0 < start <= 1_000_000:
        raise UsageError(f"--capacity-start must be above 0 (operations per second), not {start:g}")
    precision_text = text(options, CAPACITY, "--capacity-precision")
    try:
        precision = float(precision_text.rstrip("%")) / (100 if precision_text.endswith("%") else 1)
    except ValueError:
        raise UsageError(
            f"invalid --capacity-precision {precision_text!r}: expected a share, e.g. 10% or 0.1"
        ) from None
    if not 0 < precision < 1:
        raise UsageError(f"--capacity-precision must be between 0 and 100%, not {precision_text}")
    hold = parse_duration(text(options, CAPACITY, "--capacity-hold"), "--capacity-hold")
    settle = parse_duration(text(options, CAPACITY, "--capacity-settle"), "--capacity-settle")
    if not 0 <= settle < hold:
        raise UsageError(f"--capacity-settle ({settle:g} s) must be shorter than --capacity-hold ({hold:g} s)")
    if mode == "off":
        return Capacity(None, start, precision, hold, settle)
    if not checks.percentiles:
        raise UsageError("--find-capacity needs an SLO: at least one --check-percentile, e.g. 'PULL image:p99<1000'")
    if mode == "mixed":
        pull, push = rates.pull, rates.push
        if not (isinstance(pull, ConstantRate) and isinstance(push, ConstantRate)):
            raise UsageError(
                "--find-capacity mixed takes the ratio of pulls to pushes from --pull-rate and --push-rate:"
                " give both as plain rates, e.g. --pull-rate 9 --push-rate 1"
            )
        total = pull.rate + push.rate
        weights: tuple[tuple[str, float], ...] = (("PULL", pull.rate / total), ("PUSH", push.rate / total))
    else:
        kind = mode.upper()
        if rates.of(kind) is not None:
            flag = f"--{mode}-rate" if text(options, RATES, f"--{mode}-rate") else "--rate-stages"
            raise UsageError(f"--find-capacity {mode} sets the {mode} rate itself: leave out {flag}")
        weights = ((kind, 1.0),)
    return Capacity(mode, start, precision, hold, settle, weights)


@dataclass(frozen=True)
class Metrics:
    urls: tuple[str, ...]  # the registry's Prometheus endpoints
    interval: float  # seconds
    names: tuple[tuple[str, str], ...] = ()  # (name, URL) of the ones given as NAME=URL

    def named(self, name: str) -> str | None:
        return dict(self.names).get(name)


def metrics(options: Any) -> Metrics:
    from urllib.parse import urlsplit

    urls, names = [], []
    for given in METRICS["--registry-metrics"].given(options) or ():
        name, url = _named_url(given.strip())
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
            raise UsageError(f"invalid --registry-metrics {shown!r}: expected [NAME=]http(s)://HOST[:PORT]/PATH")
        urls.append(url)
        if name:
            names.append((name, url))
    interval = number(options, METRICS, "--registry-metrics-interval")
    if not 0.1 <= interval <= 3600:
        raise UsageError(f"--registry-metrics-interval must be between 0.1 and 3600 seconds, not {interval:g}")
    return Metrics(tuple(urls), interval, tuple(names))


def _named_url(given: str) -> tuple[str, str]:
    """``upstream=http://…`` → (``upstream``, the URL); a bare URL has no name."""
    name, sep, rest = given.partition("=")
    if sep and "://" not in name and "/" not in name:
        return name.strip(), rest.strip()
    return "", given


@dataclass(frozen=True)
class Exposition:
    """Where regload serves its own metrics for Prometheus (``--metrics-port``), or ``port`` None."""

    host: str
    port: int | None


def exposition(options: Any) -> Exposition:
    host = text(options, EXPOSITION, "--metrics-host") or "0.0.0.0"
    if not text(options, EXPOSITION, "--metrics-port"):
        return Exposition(host, None)
    return Exposition(host, whole(options, EXPOSITION, "--metrics-port", 1, 65535))


@dataclass(frozen=True)
class Storms:
    """What each storm pulls and how its StormUsers are released (``--storm-…``)."""

    every: float  # seconds between two storms
    image: str | None  # --storm-image: pull this one in every storm, push nothing
    push_to: str | None  # --storm-push-to: the upstream of a pull-through --host
    jitter: float  # seconds
    layers: int
    layer_size: SizeDistribution


def storms(options: Any) -> Storms:
    from urllib.parse import urlsplit

    from ..reference import Registry, parse_reference
    from ..units import parse_duration

    every = parse_duration(text(options, STORM, "--storm-every"), "--storm-every")
    if not 1 <= every <= 86_400:
        raise UsageError(f"--storm-every must be between 1 s and a day, not {every:g} s")
    jitter = parse_duration(text(options, STORM, "--storm-jitter") or "0", "--storm-jitter")
    if not 0 <= jitter < every:
        raise UsageError(f"--storm-jitter ({jitter:g} s) must be shorter than --storm-every ({every:g} s)")
    image = text(options, STORM, "--storm-image").strip() or None
    if image is not None:
        try:  # on --host: a bad reference stops the run here, in one line
            parse_reference(image, registry=Registry.from_url("http://registry"))
        except RegloadError as e:
            raise UsageError(f"--storm-image: {e}") from None
    push_to = text(options, STORM, "--storm-push-to").strip().rstrip("/") or None
    if push_to is not None:
        parts = urlsplit(push_to)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = f"{parts.scheme}://{parts.hostname or ''}"  # never a password the URL may hold
            raise UsageError(f"invalid --storm-push-to {shown!r}: expected http(s)://HOST[:PORT]")
        if image is not None:
            raise UsageError("--storm-image pulls an existing image: leave out --storm-push-to, nothing is pushed")
    return Storms(
        every=every,
        image=image,
        push_to=push_to,
        jitter=jitter,
        layers=whole(options, STORM, "--storm-layers", 1, 1000),
        layer_size=parse_size_distribution(text(options, STORM, "--storm-layer-size"), "--storm-layer-size"),
    )


@dataclass(frozen=True)
class Events:
    """The maintenance windows (``--event``), by time."""

    schedule: tuple[Event, ...] = ()


def events(options: Any) -> Events:
    from ..workload.maintenance import parse_events

    return Events(parse_events(EVENTS["--event"].given(options) or ()))
