#!/usr/bin/env python3
"""Pull bytes: regload pull beside curl, skopeo and podman, on loopback against docker-registry.

    python bench/pull_bytes.py [--size 1GiB] [--short] [--repeat 3]

Pushes one image with a single layer of SIZE (``regload push synthetic:layers=1,size=SIZE``),
then measures, best and median of N runs:

- curl -s -o /dev/null of the layer blob URL: the baseline (no hashing), MB/s over the layer;
- curl -s URL | openssl dgst -sha256: the same with the digest computed (the pipeline's wall
  time), what a C client that verifies can do;
- sha256 of the same number of bytes in memory (Python's hashlib, OpenSSL): the cost of the
  verification alone, in a process of its own;
- regload pull REF (no output, every digest and size verified while streaming): MB/s over the
  layer (regload's own ``layers`` timing) and the whole command's wall time;
- regload pull --no-verify REF: the layer's bytes counted, no digest;
- skopeo copy docker://REF oci:DIR, wall time (whole image);
- podman pull REF, wall time (whole image; the image is removed before each run).

Targets: verified regload >= 0.8x of min(curl, sha256 in memory), each measured in the same
round; --no-verify >= 0.9x curl; regload >= 5x faster than skopeo and podman (issue 4).
Legs whose tool is missing or fails are printed as "skipped: reason"; the exit status is 0
unless the registry or regload itself fails.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
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
)

from regload.local_registry import LocalRegistry  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    size, times, short = parse_common(argv, __doc__.splitlines()[0])
    timeout = 120 if short else 1800
    work = Path(tempfile.mkdtemp(prefix="regload-bench-pull-"))
    try:
        with LocalRegistry() as registry:
            ref = f"{registry.host}/bench/pull:latest"
            print(f"pull bytes: one layer of {size} bytes ({size / (1 << 20):.0f} MiB), {times} run(s) per leg")
            print(f"registry: docker-registry at {registry.url}, storage {registry.storage_dir}")
            _, pushed = regload_json(["push", f"synthetic:layers=1,size={size}", ref, "--no-check-existing"], timeout)
            layer = next(b for b in pushed["blobs"] if b["mediaType"].endswith("tar") or "layer" in b["mediaType"])
            blob_url = f"{registry.url}/v2/bench/pull/blobs/{layer['digest']}"
            layer_size = int(layer["size"])
            print(f"layer {layer['digest']}, {layer_size} bytes; {load_note()}\n")

            figures = measure(ref, blob_url, layer_size, times, timeout, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    curl, sha, curl_sha, rl_layer, rl_counted, rl_whole, skopeo, podman = figures
    print("figures (layer MB/s from each tool's own transfer clock; whole image = command wall time):")
    print_figure(curl, layer_size)
    print_figure(sha, layer_size)
    print_figure(curl_sha, layer_size)
    print_figure(rl_layer, layer_size)
    print_figure(rl_counted, layer_size)
    print_figure(rl_whole, layer_size)
    print_figure(skopeo, layer_size)
    print_figure(podman, layer_size)
    print(f"ratios ({load_note()}):")
    slower = max((curl, sha), key=lambda fig: fig.best if fig.ok else 0.0)  # the lower of the two floors
    print_ratio(f"regload pull / min(curl, sha256) [{slower.name.split()[0]}]", rl_layer, slower, ">= 0.8x")
    print_ratio("regload pull / curl (layer throughput)", rl_layer, curl, "-")
    print_ratio("regload pull --no-verify / curl", rl_counted, curl, ">= 0.9x")
    print_ratio("regload pull / curl | openssl sha256 (both verify)", rl_layer, curl_sha, "-")
    print_ratio("regload pull vs skopeo copy (whole image)", rl_whole, skopeo, ">= 5x faster")
    print_ratio("regload pull vs podman pull (whole image)", rl_whole, podman, ">= 5x faster")
    return 0 if curl.ok and rl_layer.ok else 1


def measure(ref: str, blob_url: str, layer_size: int, times: int, timeout: float, work: Path) -> tuple[Figure, ...]:
    def curl_once(_: int) -> float:
        _, out = run(["curl", "-sSf", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", blob_url], timeout)
        seconds, got = out.split()
        if int(got) != layer_size:
            raise RuntimeError(f"curl downloaded {got} bytes, expected {layer_size}")
        return float(seconds)

    rl_whole = Figure("regload pull (whole image, wall)")

    def regload_once(_: int) -> float:
        wall, out = regload_json(["pull", ref], timeout)
        rl_whole.seconds.append(wall)
        return float(out["timings"]["layers"])

    def regload_counted_once(_: int) -> float:
        _, out = regload_json(["pull", "--no-verify", ref], timeout)
        return float(out["timings"]["layers"])

    def sha_once(_: int) -> float:
        code = (
            "import hashlib, time; block = bytes(range(256)) * 4096; view = memoryview(block); "
            f"n, h = {layer_size}, hashlib.sha256(); t = time.perf_counter()\n"
            "while n > 0:\n h.update(view[: min(n, len(block))]); n -= len(block)\n"
            "h.hexdigest(); print(time.perf_counter() - t)"
        )
        _, out = run([sys.executable, "-c", code], timeout)
        return float(out)

    def curl_sha_once(_: int) -> float:
        # The baseline with verification: curl piped into OpenSSL's sha256 (coreutils' sha256sum
        # is several times slower). Wall time of the pipeline.
        wall, out = run(["bash", "-c", f"set -o pipefail; curl -sSf '{blob_url}' | openssl dgst -sha256"], timeout)
        if blob_url.rsplit(":", 1)[1] not in out:
            raise RuntimeError(f"curl | openssl printed {out.strip()!r}")
        return wall

    if not tool("curl"):
        raise SystemExit("curl is needed for the baseline (apt-get install curl)")
    legs = [
        ("curl -o /dev/null (layer blob)", curl_once),
        ("sha256 of as many bytes, in memory", sha_once),
        ("regload pull (layer, verified)", regload_once),
        ("regload pull --no-verify (layer, counted)", regload_counted_once),
    ]
    if tool("openssl"):
        legs.append(("curl | openssl dgst -sha256 (verified)", curl_sha_once))
    # The legs take turns, so a change in the machine's load hits them alike.
    curl, sha, rl_layer, rl_counted, *rest = interleave(legs, times)
    curl_sha = rest[0] if rest else Figure("curl | openssl dgst -sha256", skipped="openssl not installed")
    if not rl_layer.ok:
        rl_whole.skipped = rl_layer.skipped

    if tool("skopeo"):

        def skopeo_once(i: int) -> float:
            target = work / f"skopeo-{i}"
            try:
                wall, _ = run(
                    ["skopeo", "copy", "--src-tls-verify=false", "-q", f"docker://{ref}", f"oci:{target}:latest"],
                    timeout,
                )
            finally:
                shutil.rmtree(target, ignore_errors=True)
            return wall

        skopeo = repeat("skopeo copy docker:// oci: (whole image)", times, skopeo_once)
    else:
        skopeo = Figure("skopeo copy", skipped="skopeo not installed (apt-get install skopeo)")

    podman = podman_leg(ref, times, timeout)
    return curl, sha, curl_sha, rl_layer, rl_counted, rl_whole, skopeo, podman


def podman_leg(ref: str, times: int, timeout: float) -> Figure:
    name = "podman pull (whole image)"
    if not tool("podman"):
        return Figure(name, skipped="podman not installed (apt-get install podman)")

    def rmi() -> None:
        try:
            run(["podman", "rmi", "-f", ref], 120)
        except Exception:
            pass

    def podman_once(_: int) -> float:
        rmi()  # a present image would make the pull skip its layers
        try:
            wall, _ = run(["podman", "pull", "-q", "--tls-verify=false", ref], timeout)
        finally:
            rmi()
        return wall

    return repeat(name, times, podman_once)


if __name__ == "__main__":
    sys.exit(main())
