"""Client profiles: what a real registry client sends when it pulls and pushes.

A profile is the request sequence, headers and concurrency of one client, as its source code
has it, expressed as regload's own ``PullOptions`` and ``PushOptions`` and a User-Agent: a load
of ``--client-profile containerd`` users looks to the registry like kubelets pulling. Options
given explicitly (``--jobs``, ``--upload-mode``, …) override the profile's.

Each value cites the client's source (a file and line of the version named). Where a client's
behaviour depends on state regload does not keep (docker's layer metadata, containers/image's
blob-info cache: which repositories a blob was seen in), the profile mounts only what
``--mount-from`` names, and docker's metadata is regload's digest cache (a layer pushed before).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from . import __version__
from . import mediatypes as mt
from .errors import UsageError
from .flows.pull import PullOptions
from .flows.push import PushOptions
from .http import TransportOptions


@dataclass(frozen=True)
class ClientProfile:
    name: str
    client: str  # the client it reproduces, with the version its source was read at
    user_agent: str
    pull: PullOptions
    push: PushOptions
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request
    keep_alive: bool = True  # False: a new connection for every request

    def pull_options(self, **given: Any) -> PullOptions:
        """The profile's pull, with the options the user gave (``None``: not given) in place."""
        return replace(self.pull, **{k: v for k, v in given.items() if v is not None})

    def push_options(self, **given: Any) -> PushOptions:
        return replace(self.push, **{k: v for k, v in given.items() if v is not None})

    def user_agent_or(self, given: str | None) -> str:
        """``--user-agent`` when given (one line), else the profile's."""
        if given is None:
            return self.user_agent
        if not given.strip() or any(c in given for c in "\r\n"):
            raise UsageError("--user-agent must be one non-empty line")
        return given.strip()

    def with_headers(self, given: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        """The profile's headers, but for those the user gives (``--header``), then the user's."""
        names = {name.lower() for name, _ in given}
        return tuple(h for h in self.headers if h[0].lower() not in names) + given


REGLOAD = ClientProfile(
    "regload", f"regload {__version__}", TransportOptions().user_agent, PullOptions(), PushOptions()
)

# dockerd with its own image store (moby v20.10.27, and its distribution v2.8.2 client; the same
# logic up to v29). With the containerd image store, dockerd pulls and pushes as containerd does.
DOCKER = ClientProfile(
    "docker",
    "dockerd 29 (moby's own pull and push)",
    # dockerversion/useragent.go:19-37 and :74-78 (the CLI's part escaped: \( \)); the versions
    # are an example of the format.
    "docker/29.0.0 go/go1.24.9 git-commit/3d4129b kernel/6.1.0-13-amd64 os/linux arch/amd64"
    " UpstreamClient(Docker-Client/29.0.0 \\(linux\\))",
    PullOptions(
        jobs=3,  # daemon/config/config.go:29 DefaultMaxConcurrentDownloads
        # distribution/pull_v2.go:353 tags.Get: HEAD the tag (distribution registry/client/
        # repository.go:320); a GET instead on an error or without Docker-Content-Digest (:327-341);
        # then the manifest by digest (pull_v2.go:379, repository.go:468).
        head_first=True,
        head_fallback=frozenset(range(400, 600)) - {401},
        # repository.go:313 adds one Accept field per registered type (distribution manifests.go:78,
        # a Go map's keys: in another order on every request). Since v29 schema 1 is not
        # registered: these four.
        manifest_accept=(mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.OCI_INDEX),
        # pull_v2.go:676-684: the config in a goroutine of its own while the layers download.
        config_order="alongside",
    ),
    PushOptions(
        jobs=5,  # daemon/config/config.go:33 DefaultMaxConcurrentUploads
        # push_v2.go:315-318: a HEAD only for a layer the daemon has metadata of (its digest from an
        # earlier pull or push); POST (:432), one PATCH of the stream with no length (:485,
        # registry/client/blob_writer.go:38-69: chunked), PUT ?digest= and a HEAD (blob_writer.go:
        # 118-139). The config after the layers, HEADed first (manifest/schema2/builder.go:51).
        upload_mode="streamed",
        existence="known",
        head_after_commit=True,
        patch_length=False,
    ),
    # distribution/registry.go:97 DisableKeepAlives (until v29.0): a connection per request.
    keep_alive=False,
)

# containerd v1.7.34 (the CRI plugin behind kubelet; ctr push).
CONTAINERD = ClientProfile(
    "containerd",
    "containerd 1.7 (CRI, kubelet)",
    "containerd/v1.7.34",  # remotes/docker/resolver.go:159-160 (version/version.go:26)
    PullOptions(
        jobs=3,  # pkg/cri/config/config_unix.go:100 MaxConcurrentDownloads
        # remotes/docker/resolver.go:237-346 Resolve: no ping; HEAD the tag (:286), a GET on 405
        # (:638-643) or without a digest (:334-346); the manifest by digest (fetcher.go:104).
        head_first=True,
        ping=False,
        # resolver.go:164-171: one Accept field, the four types and */*.
        manifest_accept=(
            ", ".join((mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.OCI_INDEX, "*/*")),
        ),
        typed_accept=True,  # fetcher.go:249-254: Accept: <media type>, */*
        # pkg/unpack/unpacker.go:183-214: the layers wait for the config, then go 3 at once.
        config_order="first",
    ),
    PushOptions(
        # ctr 1.7 sets no limit (cmd/ctr/commands/images/push.go:71-74); 2.x's transfer service
        # pushes 3 at once (plugins/transfer/plugin.go:283).
        jobs=3,
        # remotes/docker/pusher.go: no ping; HEAD each blob with Accept: <type>, */* (:107-121),
        # POST (:170; ?mount=&from= when the source is known, :174-184), the whole body in one
        # PUT ?digest= (:265-290, no PATCH); the config and layers together (remotes/handlers.go:
        # 213-252); HEAD the manifest by tag, PUT unless it holds this digest (:130-134, :164).
        ping=False,
        upload_mode="monolithic",
        config_with_layers=True,
        manifest_check="before-put",
        typed_accept=True,
    ),
)

# podman 4.3, skopeo 1.9 and CRI-O: containers/image v5.23.1.
PODMAN = ClientProfile(
    "podman",
    "podman, CRI-O (containers/image 5.23)",
    "containers/5.23.1 (github.com/containers/image)",  # docker/docker_client.go:72 (version/version.go)
    PullOptions(
        jobs=6,  # copy/copy.go:44 maxParallelDownloads
        # docker/docker_image_src.go:207-217: GET by tag, no HEAD; docker/docker_client.go:604-608
        # adds one Accept field per type of manifest/manifest.go:54-61, in this order.
        manifest_accept=(
            mt.OCI_MANIFEST,
            mt.DOCKER_MANIFEST,
            mt.DOCKER_SCHEMA1_SIGNED,
            mt.DOCKER_SCHEMA1,
            mt.DOCKER_MANIFEST_LIST,
            mt.OCI_INDEX,
        ),
        # copy/copy.go:642,827-829: into containers-storage the config is read before the layers
        # (skopeo copy to a registry or a directory reads it after them).
        config_order="first",
    ),
    PushOptions(
        jobs=6,  # copy/copy.go:44: the same limit for uploads
        # docker/docker_image_dest.go:228-231 HEAD the blob; PutBlob (:133-225): POST, one PATCH,
        # PUT ?digest=; the config after the layers (copy/copy.go:1052); the manifest PUT by tag.
        upload_mode="streamed",
    ),
    headers=(("Docker-Distribution-API-Version", "registry/2.0"),),  # docker_client.go:603, every request
)

# crane and go-containerregistry v0.21.9.
CRANE = ClientProfile(
    "crane",
    "crane (go-containerregistry 0.21)",
    # cmd/crane/cmd/root.go:71-77 and pkg/v1/remote/transport/useragent.go:78-83 (the version read).
    "crane/v0.21.9 go-containerregistry/v0.21.9",
    PullOptions(
        # cmd/crane/cmd/pull.go:78 writes a tarball (pkg/v1/tarball/write.go:154-199): the config,
        # then one layer at a time (with --format oci: 4 at once and the config last).
        jobs=1,
        # pkg/v1/remote/fetcher.go:150-160: a GET with one Accept, the types of descriptor.go:29-32
        # joined by commas.
        manifest_accept=(
            ",".join(
                (
                    mt.DOCKER_SCHEMA1,
                    mt.DOCKER_SCHEMA1_SIGNED,
                    mt.DOCKER_MANIFEST,
                    mt.OCI_MANIFEST,
                    mt.DOCKER_MANIFEST_LIST,
                    mt.OCI_INDEX,
                )
            ),
        ),
    ),
    PushOptions(
        jobs=4,  # pkg/v1/remote/options.go:107 defaultJobs
        # pkg/v1/remote/pusher.go:292-330: HEAD the manifest by tag first, and stop when it is
        # this one; write.go:386-480 per blob: HEAD, POST, one PATCH with its length, PUT ?digest=;
        # the config in the same jobs, queued last (pusher.go:474-521).
        upload_mode="streamed",
        config_with_layers=True,
        manifest_check="first",
    ),
)

PROFILES: dict[str, ClientProfile] = {p.name: p for p in (REGLOAD, DOCKER, CONTAINERD, PODMAN, CRANE)}


def profile(name: str | None) -> ClientProfile:
    """The profile named (``None`` or empty: regload's own)."""
    if not name:
        return REGLOAD
    found = PROFILES.get(name.strip().lower())
    if found is None:
        raise UsageError(f"unknown client profile {name!r}: choose one of {', '.join(PROFILES)}")
    return found
