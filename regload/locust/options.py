"""regload's Locust options: on the command line, in the web UI's custom parameters, and sent by
the master to every worker (Locust forwards custom options with each spawn message)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..auth import Credentials
from ..errors import UsageError
from ..profiles import PROFILES, REGLOAD, ClientProfile, profile
from ..pull import PullOptions
from ..push import UPLOAD_MODES, PushOptions
from ..reference import Registry, parse_reference
from ..retry import NO_RETRIES, RetryPolicy
from ..sources.gzip_layer import check_ratio
from ..units import parse_size
from ..wiring.connect import ClientSettings
from ..wiring.retry_options import add_retry_arguments, retry_policy
from ..workload.fresh import PullAfterPush
from ..workload.nodes import NodeSpec
from ..workload.platforms import PlatformMix
from ..workload.pool import PoolImage
from ..workload.pool_layout import PoolSpec
from ..workload.popularity import UNIFORM, Popularity, parse_popularity
from ..workload.rates import ARRIVALS, Schedule, parse_rate
from ..workload.sizes import SizeDistribution, parse_size_distribution
from ..workload.trace.records import Window

TOKEN_CACHE_MODES = ("shared", "user", "off")
# A select's default must be one of its choices: Locust's web form shows (and a browser posts) the
# first choice for a default that is not among them. The profile's upload mode is a choice of its own.
PROFILES_UPLOAD_MODE = "profile"
_PULL, _PUSH = PullOptions(), PushOptions()
_SIZES_HELP = (
    "SIZE, MIN-MAX (uniform), lognormal:median=SIZE,p90=SIZE[,max=SIZE], empirical:PATH (one size per line,"
    " or PERCENT SIZE lines), or a preset: dockerhub-2019, ibm-fast18"
)

# Each option's default, by dest: the command line, the web UI and settings_from read these.
DEFAULTS: dict[str, Any] = {
    "registry_username": "",
    "registry_password": "",
    "registry_ca_cert": "",
    "registry_insecure": False,
    "registry_http_2": False,
    "token_cache": "shared",
    "repos": 4,
    "repo_prefix": "regload/load",
    "pull_pool_size": 8,
    "pull_pool_layers": 3,
    "pull_pool_layer_size": "1MiB",
    "pull_popularity": "uniform",
    "pull_image": [],
    "client_profile": REGLOAD.name,
    "user_agent": "",
    "pull_jobs": None,  # None (or empty in the web UI): the client profile's
    "pull_head_first": _PULL.head_first,
    "pull_platform": "",
    "node_users": 0,
    "node_parallel_pulls": 1,
    "no_verify": not _PULL.verify,
    "pull_pushed": False,
    "pool_families": 0,
    "pool_base_layers": 2,
    "pool_seed_jobs": 16,
    "pull_after_push": "",
    "push_layers": 3,
    "push_layer_size": "1MiB",
    "layer_gzip_ratio": "",
    "upload_mode": PROFILES_UPLOAD_MODE,
    "chunk_size": f"{_PUSH.chunk_size // (1 << 20)}MiB",
    "push_jobs": None,
    "no_check_existing": not _PUSH.check_existing,
    "connection_backoff": 1.0,
    "audit_file": "",
    "pull_rate": "",
    "push_rate": "",
    "rate_stages": "",
    "arrivals": "poisson",
    "trace": [],
    "trace_speed": 1.0,
    "trace_window": "",
    "check_fail_ratio": None,
    "check_percentile": [],
}


def add_arguments(parser: Any) -> None:
    def add(flag: str, *, dest: str | None = None, **kw: Any) -> None:
        # Locust's own add_argument (not an argument group's) knows is_secret / include_in_web_ui.
        dest = dest or flag.lstrip("-").replace("-", "_")
        parser.add_argument(flag, dest=dest, default=DEFAULTS[dest], **kw)

    add("--registry-username", env_var="REGLOAD_USERNAME", help="registry user (or REGLOAD_USERNAME)")
    add(
        "--registry-password",
        is_secret=True,
        env_var="REGLOAD_PASSWORD",
        help="registry password (or REGLOAD_PASSWORD; never sent to the web UI)",
    )
    add("--registry-ca-cert", help="PEM file of CA certificates to trust")
    add("--registry-insecure", action="store_true", help="do not verify TLS certificates")
    # dest "registry_http_2", not "registry_http2": the web UI names the field "registryHttp2" and
    # posts it back as "registry_http_2", which Locust ignores unless it is the option's dest.
    add("--registry-http2", dest="registry_http_2", action="store_true", help="use the httpx transport with HTTP/2")
    add(
        "--token-cache",
        choices=TOKEN_CACHE_MODES,
        help="bearer tokens: shared by the users of a process, per user, or off",
    )
    add(
        "--client-profile",
        choices=list(PROFILES),
        help="users send what this client sends: its requests, headers, concurrency and User-Agent;"
        " --pull-jobs, --push-jobs, --upload-mode, --pull-head-first and --no-check-existing override it",
    )
    add("--user-agent", help="the User-Agent users send (default: the client profile's)")
    add("--repos", type=int, help="spread images over this many repositories")
    add("--repo-prefix", help="repository name prefix (repositories are PREFIX-0 … PREFIX-N-1)")
    add("--pull-pool-size", type=int, help="synthetic images pushed at test start for PullUser")
    add("--pull-pool-layers", type=int, help="layers per pool image")
    add(
        "--pull-pool-layer-size",
        metavar="SIZES",
        help=f"layer sizes of pool images: {_SIZES_HELP}",
    )
    add(
        "--pull-popularity",
        metavar="POPULARITY",
        help="which pool image a pull picks: uniform, or zipf:S (the i-th pool image, from 0, with weight 1/(i+1)^S)",
    )
    add(
        "--pull-image",
        action="append",
        include_in_web_ui=False,
        help="pull this existing image (repo:tag on --host); repeatable",
    )
    add(
        "--pull-jobs",
        type=int,
        help=f"layers a PullUser fetches at once (default: the profile's; regload {_PULL.jobs})",
    )
    add("--pull-head-first", action="store_true", help="HEAD the manifest, then GET it by digest")
    add(
        "--pull-platform",
        metavar="PLATFORMS",
        help="the platform a pull takes from an index: os/arch[/variant], or a weighted mix such as"
        " linux/amd64:3,linux/arm64:1 (default linux/amd64)",
    )
    add("--node-users", type=int, help="PullUsers per node, whose pulls the node limits as kubelet does (0: no nodes)")
    add(
        "--node-parallel-pulls",
        type=int,
        help="pulls a node runs at once (kubelet's maxParallelImagePulls; 1: serializeImagePulls, its default)",
    )
    add("--no-verify", action="store_true", help="count pulled bytes without checking digests")
    add("--pull-pushed", action="store_true", help="images pushed during the run join the pull pool")
    add(
        "--pool-families",
        type=int,
        help="pool image i belongs to family i%%F and shares its family's base layers (0: independent images)",
    )
    add(
        "--pool-base-layers",
        type=int,
        help="layers of each family's base stack (the lowest is shared by all families), below the image's own",
    )
    add("--pool-seed-jobs", type=int, help="pool images pushed at once while seeding")
    add(
        "--pull-after-push",
        metavar="P[:DELAY]",
        help="a pushed image is pulled once by a PullUser, DELAY later, with probability P (e.g. 0.3:2s)",
    )
    add("--push-layers", type=int, help="layers per pushed image")
    add("--push-layer-size", metavar="SIZES", help=f"layer sizes of pushed images: {_SIZES_HELP}")
    add(
        "--layer-gzip-ratio",
        metavar="R",
        help="synthetic layers are gzip streams of the layer size whose tar compresses by R (1-50; Docker Hub's"
        " median is ~2.6); empty or 0: uncompressed tars of noise",
    )
    add(
        "--upload-mode",
        choices=(PROFILES_UPLOAD_MODE, *UPLOAD_MODES),
        help=f"how PushUser uploads blobs (default: the client profile's; regload's is {_PUSH.upload_mode})",
    )
    add("--chunk-size", help="chunk size for --upload-mode chunked")
    add(
        "--push-jobs", type=int, help=f"blobs a PushUser uploads at once (default: the profile's; regload {_PUSH.jobs})"
    )
    add("--no-check-existing", action="store_true", help="PushUser uploads without a HEAD per blob first")
    add(
        "--connection-backoff",
        type=float,
        help="seconds a user waits after an operation failed to reach the registry, or had its credentials"
        " refused (0: retry at once)",
    )
    add(
        "--audit-file",
        include_in_web_ui=False,
        metavar="PATH",
        help="append a JSON line per image pushed (every process of this machine appends to PATH)",
    )
    add(
        "--pull-rate",
        metavar="RATE",
        help="open model: PULLs per second in total (all processes), or stages 30s:5,2m:50; empty: closed loop",
    )
    add("--push-rate", metavar="RATE", help="open model: PUSHes per second in total, or stages; empty: closed loop")
    add(
        "--rate-stages",
        metavar="STAGES",
        help="open model for both classes unless --pull-rate/--push-rate gives one its own: DURATION:RATE,…"
        " ramps linearly to each RATE (30s:5,2m:50,1m:50,30s:0)",
    )
    add("--arrivals", choices=ARRIVALS, help="open model: poisson (exponential gaps) or uniform (evenly spaced)")
    add(
        "--trace",
        action="append",
        include_in_web_ui=False,
        metavar="FILE",
        help="TraceUser replays this IBM-format registry trace (JSON array, .gz too); repeatable: merged by time",
    )
    add("--trace-speed", type=float, help="replay traces this many times faster than recorded (2: in half the time)")
    add("--trace-window", metavar="START-END", help="replay only this part of the trace: 60-120, 1m-2m, 30s-")
    add_retry_arguments(parser)
    add("--check-fail-ratio", type=float, help="exit non-zero when the failure ratio ends above this (e.g. 0.01)")
    add(
        "--check-percentile",
        action="append",
        include_in_web_ui=False,
        metavar="'TYPE NAME:PCT<MS'",
        help="exit non-zero when a percentile ends above a limit, e.g. 'PULL image:95<2000'; repeatable",
    )


@dataclass(frozen=True)
class LoadSettings:
    """The options a user reads, validated once per process."""

    username: str
    password: str
    ca_cert: str | None
    insecure: bool
    http2: bool
    token_cache: str
    repos: int
    repo_prefix: str
    pool_size: int
    pool_layers: int
    pool_layer_size: SizeDistribution
    pull_images: tuple[str, ...]
    pull_jobs: int
    head_first: bool
    verify: bool
    pull_pushed: bool
    push_layers: int
    push_layer_size: SizeDistribution
    upload_mode: str
    chunk_size: int
    push_jobs: int
    check_existing: bool
    connection_backoff: float
    retry: RetryPolicy = NO_RETRIES
    audit_file: str | None = None
    pull_rate: Schedule | None = None  # None: PullUser is a closed loop
    push_rate: Schedule | None = None
    arrivals: str = "poisson"
    trace_files: tuple[str, ...] = ()
    trace_speed: float = 1.0
    trace_window: Window = Window()
    pull_popularity: Popularity = UNIFORM  # which pool image a pull picks
    pool_families: int = 0  # 0: independent pool images
    pool_base_layers: int = 2
    pool_seed_jobs: int = 16
    pull_after_push: PullAfterPush | None = None
    gzip_ratio: float | None = None  # None: synthetic layers are uncompressed tars
    profile: ClientProfile = REGLOAD
    user_agent: str = REGLOAD.user_agent
    pull_platforms: PlatformMix = PlatformMix()
    nodes: NodeSpec = NodeSpec()

    def pull_options(self) -> PullOptions:
        """A user's pull: the profile's, with the options given in place."""
        return self.profile.pull_options(jobs=self.pull_jobs, verify=self.verify, head_first=self.head_first)

    def push_options(self) -> PushOptions:
        return self.profile.push_options(
            upload_mode=self.upload_mode,
            chunk_size=self.chunk_size,
            jobs=self.push_jobs,
            check_existing=self.check_existing,
        )

    def pool_spec(self) -> PoolSpec:
        """The pull pool's images, as ``--pull-pool-…`` and ``--pool-…`` describe them."""
        return PoolSpec(
            layers=self.pool_layers,
            layer_size=self.pool_layer_size,
            families=self.pool_families,
            base_layers=self.pool_base_layers,
            gzip_ratio=self.gzip_ratio,
        )

    def pool_images(self, registry: Registry) -> tuple[list[PoolImage], list[PoolImage]]:
        """The seeded images (index order: the popularity rank) and the ``--pull-image`` ones, as
        every process computes them."""
        spec = self.pool_spec()
        seeded = [PoolImage(self.repository(i), spec.tag(i)) for i in range(self.pool_size)]
        named = []
        for text in self.pull_images:
            ref = parse_reference(text, registry=registry)
            named.append(PoolImage(ref.repository, ref.reference))
        return seeded, named

    def rate(self, kind: str) -> Schedule | None:
        """The open model's schedule of ``PULL`` or ``PUSH``, or None for a closed loop."""
        return self.pull_rate if kind == "PULL" else self.push_rate

    def repository(self, index: int) -> str:
        return f"{self.repo_prefix}-{index % self.repos}"

    def client_settings(self) -> ClientSettings:
        """How users reach the registry. ``--host`` is always a URL the user wrote: http://
        there is plain HTTP asked for."""
        return ClientSettings(
            credentials=Credentials(self.username, self.password) if self.username else None,
            plain_http=True,
            ca_cert=self.ca_cert,
            insecure=self.insecure,
            connections_per_host=max(self.pull_jobs, self.push_jobs) + 1,
            http2=self.http2,
            retry=self.retry,
            user_agent=self.user_agent,
            headers=self.profile.headers,
            keep_alive=self.profile.keep_alive,
        )

    def __repr__(self) -> str:  # never show the password
        return f"LoadSettings(username={self.username!r}, repos={self.repos}, upload_mode={self.upload_mode!r}, ...)"


def settings_from(options: Any) -> LoadSettings:
    """Settings from Locust's parsed options (missing attributes take the defaults)."""

    def get(name: str) -> Any:
        value = getattr(options, name, None) if options is not None else None
        return DEFAULTS[name] if value is None else value

    repos = int(get("repos"))
    if repos < 1:
        raise UsageError("--repos must be at least 1")
    chosen = profile(get("client_profile"))
    pull_jobs, push_jobs = _given_jobs(get("pull_jobs"), "--pull-jobs"), _given_jobs(get("push_jobs"), "--push-jobs")
    return LoadSettings(
        username=get("registry_username"),
        password=get("registry_password"),
        ca_cert=get("registry_ca_cert") or None,
        insecure=bool(get("registry_insecure")),
        http2=bool(get("registry_http_2")),
        token_cache=get("token_cache"),
        repos=repos,
        repo_prefix=get("repo_prefix").rstrip("/"),
        pool_size=int(get("pull_pool_size")),
        pool_layers=int(get("pull_pool_layers")),
        pool_layer_size=parse_size_distribution(get("pull_pool_layer_size"), "--pull-pool-layer-size"),
        pull_images=tuple(get("pull_image")),
        pull_jobs=pull_jobs or chosen.pull.jobs,
        head_first=bool(get("pull_head_first")) or chosen.pull.head_first,
        verify=not get("no_verify"),
        pull_pushed=bool(get("pull_pushed")),
        push_layers=max(1, int(get("push_layers"))),
        push_layer_size=parse_size_distribution(get("push_layer_size"), "--push-layer-size"),
        upload_mode=_given_upload_mode(get("upload_mode")) or chosen.push.upload_mode,
        chunk_size=parse_size(get("chunk_size"), "--chunk-size"),
        push_jobs=push_jobs or chosen.push.jobs,
        check_existing=chosen.push.check_existing and not get("no_check_existing"),
        connection_backoff=max(0.0, float(get("connection_backoff") or 0.0)),
        retry=retry_policy(options),
        audit_file=get("audit_file") or None,
        pull_rate=_schedule(get("pull_rate"), get("rate_stages"), "--pull-rate"),
        push_rate=_schedule(get("push_rate"), get("rate_stages"), "--push-rate"),
        arrivals=get("arrivals"),
        trace_files=tuple(get("trace")),
        trace_speed=_speed(get("trace_speed")),
        trace_window=Window.parse(get("trace_window")) if str(get("trace_window")).strip() else Window(),
        pull_popularity=parse_popularity(get("pull_popularity"), "--pull-popularity"),
        pool_families=_at_least(get("pool_families"), 0, "--pool-families"),
        pool_base_layers=_at_least(get("pool_base_layers"), 0, "--pool-base-layers"),
        pool_seed_jobs=_at_least(get("pool_seed_jobs"), 1, "--pool-seed-jobs"),
        pull_after_push=PullAfterPush.parse(get("pull_after_push")),
        gzip_ratio=_gzip_ratio(get("layer_gzip_ratio")),
        profile=chosen,
        user_agent=chosen.user_agent_or(str(get("user_agent") or "").strip() or None),  # empty: the web UI's unset
        pull_platforms=PlatformMix.parse(str(get("pull_platform"))),
        nodes=NodeSpec(
            _at_least(get("node_users"), 0, "--node-users"),
            _at_least(get("node_parallel_pulls"), 1, "--node-parallel-pulls"),
        ),
    )


def _given_upload_mode(value: Any) -> str | None:
    """--upload-mode: None for the profile's (``profile``, or empty from an older form)."""
    text = str(value or "").strip()
    return None if text in ("", PROFILES_UPLOAD_MODE) else text


def _given_jobs(value: Any, what: str) -> int | None:
    """A jobs option: None when not given (the web UI posts an empty field), else 1 or more."""
    if value is None or str(value).strip() == "":
        return None
    return _at_least(value, 1, what)


def _at_least(value: Any, low: int, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"invalid {what} {value!r}: expected a whole number") from None
    if number < low:
        raise UsageError(f"{what} must be at least {low}, not {number}")
    return number


def _speed(value: Any) -> float:
    try:
        speed = float(value)
    except (TypeError, ValueError):
        speed = 0.0
    if not 0 < speed < float("inf"):
        raise UsageError(f"invalid --trace-speed {value!r}: expected a factor above 0, e.g. 2 or 0.5")
    return speed


def _schedule(own: str, stages: str, what: str) -> Schedule | None:
    """A class's own rate, else the shared --rate-stages, else None (a closed loop)."""
    if str(own).strip():
        return parse_rate(str(own), what)
    if str(stages).strip():
        return parse_rate(str(stages), "--rate-stages")
    return None


def _gzip_ratio(value: Any) -> float | None:
    """--layer-gzip-ratio: None (empty, 0 or 1: uncompressed layers), else a ratio from 1 to 50."""
    text = str(value).strip()
    try:
        ratio = float(text) if text else 0.0
    except ValueError:
        raise UsageError(f"--layer-gzip-ratio must be a number, not {text!r}") from None
    if ratio in (0.0, 1.0):
        return None
    try:
        return check_ratio(ratio)
    except UsageError as e:
        raise UsageError(f"--layer-gzip-ratio: {e}") from None
