#!/usr/bin/env python3
"""Push bytes: regload push beside a curl POST+PUT upload and skopeo, on loopback against docker-registry.

    python bench/push_bytes.py [--size 1GiB] [--short] [--repeat 3]

All legs upload the same blob: the single layer of ``synthetic:layers=1,size=SIZE`` (a tar of
SIZE pseudo-random bytes, 2 KiB of tar framing on top). Each run pushes to a new repository, so
no leg finds the blob already there. Best and median of N runs:

- curl: POST /v2/<repo>/blobs/uploads/ -> Location, then ``curl -T FILE`` PUT Location&digest=
  (the baseline: bytes from a file in the page cache, digest computed beforehand, untimed);
- regload push synthetic:… --upload-mode streamed --no-check-existing: the bytes are generated
  and hashed while they stream (POST, one PATCH, PUT), as docker does. The fair comparison with
  curl's upload;
- regload push synthetic:… --upload-mode streamed (default HEAD check): the HEAD needs the digest
  before any byte is sent, so a synthetic layer is generated and hashed once more in a pre-pass;
- regload push oci:LAYOUT (streamed, HEAD check): the same blob read from a file, digest known
  from the layout, like curl's input;
- skopeo copy oci:LAYOUT docker://…: wall time, whole image.

MB/s are over the layer size: curl's figure is the sum of its two requests' ``time_total``,
regload's its own ``layers`` timing (``--json``: HEAD, pre-pass, POST, PATCH, PUT), and the
wall time of the whole command (start-up included) is printed too, to compare with skopeo.
Target (issue 4): regload streamed >= 0.7x curl.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _blobs import (  # noqa: E402
    Figure,
    interleave,
    load_note,
    parse_common,
    print_figure,
    print_ratio,
    regload_json,
    repeat,
    run,
    tool,
    write_synthetic_layer,
)

from regload.local_registry import LocalRegistry  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    size, times, short = parse_common(argv, __doc__.splitlines()[0])
    timeout = 120 if short else 1800
    work = Path(tempfile.mkdtemp(prefix="regload-bench-push-"))
    spec = f"synthetic:layers=1,size={size}"
    try:
        with LocalRegistry() as registry:
            print(f"push bytes: one layer of {size} bytes ({size / (1 << 20):.0f} MiB), {times} run(s) per leg")
            print(f"registry: docker-registry at {registry.url}, storage {registry.storage_dir}")
            blob = work / "layer.tar"
            layer = write_synthetic_layer(blob, size)
            desc = layer.descriptor()
            layer_size = desc.size
            print(f"layer {desc.digest}, {layer_size} bytes (file {blob})")
            # The OCI layout for skopeo and the regload-from-file leg: regload's own pull of the
            # pushed synthetic image, so it holds the very same layer.
            seed_ref = f"{registry.host}/bench/seed:latest"
            regload_json(["push", spec, seed_ref, "--no-check-existing"], timeout)
            layout = work / "layout"
            regload_json(["pull", seed_ref, "--format", "oci", "-o", str(layout)], timeout)
            print(f"OCI layout {layout}; {load_note()}\n")
            base = registry.url
            host = registry.host
            figures = measure(base, host, spec, blob, str(desc.digest), layer_size, layout, times, timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    curl, rl_stream, rl_check, rl_oci, rl_stream_w, rl_oci_w, skopeo = figures
    print("figures (MB/s over the layer; curl: its two requests; regload: its own layer timing, or wall):")
    for fig in figures:
        print_figure(fig, layer_size)
    print(f"ratios, regload throughput / the other's ({load_note()}):")
    print_ratio("regload streamed, no HEAD / curl", rl_stream, curl, ">= 0.7x")
    print_ratio("regload streamed, HEAD + pre-pass / curl", rl_check, curl, "-")
    print_ratio("regload oci layout (from file) / curl", rl_oci, curl, "-")
    print_ratio("regload streamed, no HEAD vs skopeo (wall)", rl_stream_w, skopeo, "-")
    print_ratio("regload oci layout vs skopeo (wall, same input)", rl_oci_w, skopeo, "-")
    return 0 if curl.ok and rl_stream.ok else 1


def measure(
    base: str,
    host: str,
    spec: str,
    blob: Path,
    digest: str,
    layer_size: int,
    layout: Path,
    times: int,
    timeout: float,
) -> tuple[Figure, ...]:
    def curl_once(i: int) -> float:
        uploads = f"{base}/v2/bench/curl-{i}/blobs/uploads/"
        _, out = run(
            [
                "curl",
                "-sSf",
                "-X",
                "POST",
                "-H",
                "Content-Length: 0",
                "-o",
                "/dev/null",
                "-D",
                "-",
                "-w",
                "\n%{time_total}",
                uploads,
            ],
            timeout,
        )
        head, _, post_time = out.rpartition("\n")
        location = next(
            line.split(":", 1)[1].strip() for line in head.splitlines() if line.lower().startswith("location:")
        )
        from urllib.parse import urljoin

        url = urljoin(uploads, location)  # may be relative; keep its query (distribution's _state)
        url += ("&" if "?" in url else "?") + "digest=" + digest
        _, out = run(
            [
                "curl",
                "-sSf",
                "-T",
                str(blob),
                "-H",
                "Content-Type: application/octet-stream",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{time_total} %{size_upload}",
                url,
            ],
            timeout,
        )
        code, put_time, sent = out.split()
        if code != "201" or int(float(sent)) != layer_size:
            raise RuntimeError(f"curl PUT answered {code} after {sent} bytes")
        return float(post_time) + float(put_time)

    if not tool("curl"):
        raise SystemExit("curl is needed for the baseline (apt-get install curl)")

    def regload_leg(source: str, extra: list[str], repo: str, whole: Figure) -> Callable[[int], float]:
        def once(i: int) -> float:
            wall, out = regload_json(
                ["push", source, f"{host}/bench/{repo}-{i}:latest", "--upload-mode", "streamed", *extra], timeout
            )
            actions = {b["digest"]: b["action"] for b in out["blobs"]}
            if actions.get(digest) != "uploaded":
                raise RuntimeError(f"the layer was not uploaded: {actions.get(digest)}")
            whole.seconds.append(wall)
            return float(out["timings"]["layers"])  # HEAD, pre-pass if any, POST, PATCH, PUT

        return once

    rl_stream_w = Figure("regload push streamed --no-check-existing (wall)")
    rl_oci_w = Figure("regload push oci:layout streamed (HEAD) (wall)")
    # The legs take turns, so a change in the machine's load hits them alike.
    curl, rl_stream, rl_check, rl_oci = interleave(
        [
            ("curl POST + PUT -T file", curl_once),
            (
                "regload push streamed --no-check-existing",
                regload_leg(spec, ["--no-check-existing"], "nocheck", rl_stream_w),
            ),
            ("regload push streamed (HEAD, pre-pass)", regload_leg(spec, [], "check", Figure(""))),
            ("regload push oci:layout streamed (HEAD)", regload_leg(str(layout), [], "oci", rl_oci_w)),
        ],
        times,
    )
    rl_stream_w.skipped, rl_oci_w.skipped = rl_stream.skipped, rl_oci.skipped

    if tool("skopeo"):

        def skopeo_once(i: int) -> float:
            # --preserve-digests: push the layer as it is (uncompressed, the same bytes as the
            # other legs); by default skopeo gzips an uncompressed layer on the way to a registry.
            repo = f"bench/skopeo-{i}"
            wall, out = run(
                [
                    "skopeo",
                    "--debug",
                    "copy",
                    "--preserve-digests",
                    "--dest-tls-verify=false",
                    f"oci:{layout}",
                    f"docker://{host}/{repo}:latest",
                ],
                timeout,
                stderr=True,
            )
            # skopeo remembers where it has seen a blob (its blob-info cache) and mounts it from
            # there instead of uploading: unlink the layer from this repository after each run,
            # and refuse a run that did not upload.
            delete_blob(base, repo, digest)
            if "mount OK" in out or "Skipping blob" in out:
                raise RuntimeError("skopeo reused the layer instead of uploading it")
            return wall

        skopeo = repeat("skopeo copy --preserve-digests oci: docker://", times, skopeo_once)
    else:
        skopeo = Figure("skopeo copy", skipped="skopeo not installed (apt-get install skopeo)")
    return curl, rl_stream, rl_check, rl_oci, rl_stream_w, rl_oci_w, skopeo


def delete_blob(base: str, repo: str, digest: str) -> None:
    import urllib.request

    request = urllib.request.Request(f"{base}/v2/{repo}/blobs/{digest}", method="DELETE")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


if __name__ == "__main__":
    sys.exit(main())
