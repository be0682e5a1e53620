"""Client profiles: what a real registry client sends when it pulls and pushes.

A profile is the request sequence, headers and concurrency of one client, as its source code
has it, expressed as regload's own ``PullOptions`` and ``PushOptions`` and a User-Agent: a load
of ``--client-profile containerd`` users looks to the registry like kubelets pulling. Options
given explicitly (``--jobs``, ``--upload-mode``, …) override the profile's.

Each value cites the client's source (a file and line of the version named). Where a client's
behaviour depends on state regload does not keep (docker's layer metadata, containers/image's
blob-info cache: which repositories a blob was seen in), the profile mounts only what
``--mount-from`` names.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from . import __version__
from . import mediatypes as mt
from .errors import UsageError
from .http import TransportOptions
from .pull import PullOptions
from .push import PushOptions


@dataclass(frozen=True)
class ClientProfile:
    name: str
    client: str  # the client it reproduces, with the version its source was read at
    user_agent: str
    pull: PullOptions
    push: PushOptions

    def pull_options(self, **given: Any) -> PullOptions:
        """The profile's pull, with the options the user gave (``None``: not given) in place."""
        return replace(self.pull, **{k: v for k, v in given.items() if v is not None})

    def push_options(self, **given: Any) -> PushOptions:
        return replace(self.push, **{k: v for k, v in given.items() if v is not None})


REGLOAD = ClientProfile(
    "regload", f"regload {__version__}", TransportOptions().user_agent, PullOptions(), PushOptions()
)

# dockerd (moby v24.0.7; registry client: distribution v2.8.2 vendored).
DOCKER = ClientProfile(
    "docker",
    "dockerd (moby 24.0)",
    # dockerversion/useragent.go:19 DockerUserAgent: the daemon's parts, then the CLI's in UpstreamClient().
    "docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1.0-13-amd64 os/linux arch/amd64"
    " UpstreamClient(Docker-Client/24.0.7 \\(linux\\))",
    PullOptions(
        jobs=3,  # daemon/config/config.go:31 DefaultMaxConcurrentDownloads
        # distribution/pull_v2.go:345 pullTag: tagService.Get (a HEAD on the tag, registry/client/
        # repository.go:333, GET when the HEAD fails) learns the digest; the manifest is then GET by digest.
        head_first=True,
        # registry/client/repository.go:314: one Accept field per registered manifest type
        # (distribution.ManifestMediaTypes(), a map's keys: Go orders them anew each call).
        manifest_accept=(mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.OCI_INDEX),
        # distribution/pull_v2.go:651 pullSchema2: the config is fetched in its own goroutine while
        # the layers download.
        config_first=False,
    ),
    PushOptions(
        jobs=5,  # daemon/config/config.go:33 DefaultMaxConcurrentUploads
        # distribution/push_v2.go:397 pushDescriptor.Upload: HEAD only a digest the daemon already
        # knows for the layer (its v2 metadata), then POST, one streamed PATCH (io.Copy into the
        # blob writer, push_v2.go:552) and PUT ?digest= (Commit).
        upload_mode="streamed",
        check_existing=True,
    ),
)

# containerd v1.7.13 (the CRI plugin behind kubelet, and ctr).
CONTAINERD = ClientProfile(
    "containerd",
    "containerd 1.7 (CRI, kubelet)",
    "containerd/v1.7.13",  # version/version.go:29, sent by remotes/docker/resolver.go:131
    PullOptions(
        jobs=3,  # pkg/cri/config/config_unix.go:92 MaxConcurrentDownloads
        # remotes/docker/resolver.go:290 Resolve: no ping; HEAD the tag, GET it when the HEAD is
        # refused (resolver.go:330) or names no digest, then the manifest by digest (fetcher.go:61).
        head_first=True,
        ping=False,
        # remotes/docker/resolver.go:273: one Accept field, the four types and */*.
        manifest_accept=(
            ", ".join((mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.OCI_INDEX, "*/*")),
        ),
        blob_accept=True,  # remotes/docker/fetcher.go:151: Accept: <media type>, */*
        config_first=False,  # images/handlers.go:169 Dispatch: the manifest's children share one limiter
    ),
    PushOptions(
        jobs=3,  # cmd/ctr/commands/images/push.go:78 --max-concurrent-uploaded-layers
        # remotes/docker/pusher.go:91 push: no ping; HEAD the blob, POST (?mount=&from= when the
        # source repository is known, pusher.go:194), then the whole body in one PUT ?digest=
        # (pusher.go:276; no PATCH).
        ping=False,
        upload_mode="monolithic",
        check_existing=True,
        config_with_layers=True,  # remotes/handlers.go:230 PushContent: children dispatched together
    ),
)

# podman 4.3, skopeo 1.9 and CRI-O: containers/image v5.23.1.
PODMAN = ClientProfile(
    "podman",
    "podman, skopeo, CRI-O (containers/image 5.23)",
    "containers/5.23.1 (github.com/containers/image)",  # docker/docker_client.go:248 (version/version.go)
    PullOptions(
        jobs=6,  # copy/copy.go:93 maxParallelDownloads
        # docker/docker_image_src.go:236 fetchManifest: GET by tag, no HEAD; docker/docker_client.go:
        # 547: one Accept field per type of manifest/manifest.go:61 DefaultRequestedManifestMIMETypes.
        manifest_accept=(
            mt.OCI_MANIFEST,
            mt.DOCKER_MANIFEST,
            mt.DOCKER_SCHEMA1_SIGNED,
            mt.DOCKER_SCHEMA1,
            mt.DOCKER_MANIFEST_LIST,
            mt.OCI_INDEX,
        ),
        config_first=True,  # copy/single.go:152: the config is read (platform check) before the layers
    ),
    PushOptions(
        jobs=6,  # copy/copy.go:93: the same limit for uploads
        # docker/docker_image_dest.go:302 TryReusingBlob: HEAD the blob; PutBlob (:137): POST, one
        # streamed PATCH, PUT ?digest=; the config after the layers (copy/single.go:637).
        upload_mode="streamed",
        check_existing=True,
    ),
)

# crane and go-containerregistry v0.19.0.
CRANE = ClientProfile(
    "crane",
    "crane (go-containerregistry 0.19)",
    "crane/v0.19.0 go-containerregistry/v0.19.0",  # pkg/v1/remote/transport/useragent.go:82
    PullOptions(
        jobs=4,  # pkg/v1/remote/options.go:104 defaultJobs
        # pkg/v1/remote/fetcher.go:113 fetchManifest: a GET with one comma-joined Accept.
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
        jobs=4,  # pkg/v1/remote/options.go:104 defaultJobs
        # pkg/v1/remote/write.go:293 uploadOne: checkExistingBlob (HEAD), initiateUpload (POST),
        # streamBlob (one PATCH), commitBlob (PUT ?digest=); the config is one of the blobs (write.go:173).
        upload_mode="streamed",
        check_existing=True,
        config_with_layers=True,
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
