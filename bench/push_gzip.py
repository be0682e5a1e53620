#!/usr/bin/env python3
"""Push gzip: pushes/s of unique synthetic images through regload's push flow, on loopback
against Debian's docker-registry, for three kinds of layers side by side (issue 14):

- noise: uncompressed tars of pseudo-random bytes (``synthetic:…``, as before issue 14);
- gzip: gzip layers compressing by 2.6 (``synthetic:…,gzip=2.6``): shared members compressed
  once per process, digests from cached sha256 states (regload/sources/gzip_layer.py);
- naive: the same tars as gzip's, compressed with zlib level 6 per push while they are sent
  (what a client that gzips each layer pays: docker push, a CompressedWhileSent source).

    python bench/push_gzip.py [--layers 3] [--size 4MiB] [--users 4] [--seconds 10] [--rounds 2]
    python bench/push_gzip.py --short      # tiny: 1 round of 2 s per leg (CI smoke run)

Each leg runs in a process of its own (cold, alone): ``--users`` greenlets, one client each,
push images of ``--layers`` layers of ``--size`` bytes (the blob size; for gzip the compressed
size) with PushUser's options (HEAD check, streamed PATCH, 5 jobs), each image unique, after one
untimed warm-up push. Legs alternate round by round and each leg's best round counts. Printed:
pushes/s, MB/s of layer blobs sent, the client's and the registry's CPU ms per push. The floors
(in this process, one core, no network): per image, the bytes generated alone (noise without
its hash, gzip's views, naive's compression), and sha256 alone over one image's layer bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PYTHON  # noqa: E402
from regload import mediatypes as mt  # noqa: E402
from regload.digest import Tally  # noqa: E402
from regload.sources.base import BlobSource, SourceImage, StreamDigestedBlob  # noqa: E402
from regload.sources.gzip_layer import GzipLayer  # noqa: E402
from regload.sources.synthetic import SyntheticLayer, synthetic_image_of  # noqa: E402
from regload.units import parse_size  # noqa: E402

RATIO = 2.6
KINDS = ("noise", "gzip", "naive")
LABELS = {
    "noise": "noise layers (uncompressed, as before)",
    "gzip": f"gzip layers, ratio {RATIO:g} (shared members)",
    "naive": f"naive: zlib 6 per push, ratio {RATIO:g}",
}
MB = 1_000_000


class NaiveGzipLayer(StreamDigestedBlob):
    """GzipLayer's tar compressed per push with zlib level 6 as it is sent; digest and size are
    learnt by that pass (as docker push does: no HEAD first, see push.push_blob)."""

    media_type = mt.OCI_LAYER_GZIP

    def __init__(self, seed: int, index: int, size: int) -> None:
        self.tar = GzipLayer(seed, index, size, RATIO)
        self.size = 0
        self._digest = None

    def likely_descriptor(self) -> None:  # a CompressedWhileSent: compressed while it is sent
        return None

    def open(self) -> Iterator[bytes | memoryview]:
        tally = Tally()
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        for chunk in self.tar.raw():
            out = c.compress(chunk)
            if out:
                tally.update(out)
                yield out
        out = c.flush()
        tally.update(out)
        yield out
        self.size, self._digest = tally.size, tally.digest()


def image_of(kind: str, sizes: list[int], seed: int) -> SourceImage:
    if kind == "noise":
        return synthetic_image_of(sizes, seed)
    if kind == "gzip":
        return synthetic_image_of(sizes, seed, ratio=RATIO)
    image = synthetic_image_of(sizes, seed, ratio=RATIO)  # its config lists the same diff_ids
    naive: list[BlobSource] = [NaiveGzipLayer(seed, i, size) for i, size in enumerate(sizes, start=1)]
    return SourceImage(image.manifest_media_type, image.config, naive, description=f"naive, seed {seed}")


# -- one leg, in a child process ------------------------------------------------------------------


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def push_leg(kind: str, url: str, layers: int, size: int, users: int, seconds: float, registry_pid: int) -> dict:
    import gevent

    from regload.flows.push import PushOptions, push
    from regload.reference import Reference, Registry
    from regload.wiring.connect import ClientSettings, make_client
    from regload.wiring.gevent_runner import GeventRunner

    registry = Registry.from_url(url)
    options = PushOptions()  # PushUser's defaults
    settings = ClientSettings(plain_http=True, connections_per_host=options.jobs + 1)

    def one(client: Any, rng: random.Random, user: int) -> int:
        seed = rng.getrandbits(63)
        ref = Reference(registry, f"bench/{kind}-{user % 4}").with_reference(f"p-{seed:016x}")
        result = push(client, ref, image_of(kind, [size] * layers, seed), GeventRunner(), options)
        if any(b.action != "uploaded" for b in result.blobs):
            raise RuntimeError(f"{kind}: a blob of a unique image was not uploaded")
        return sum(b.sent for b in result.blobs[:-1])  # layers, not the config

    warm = make_client(registry, settings)
    started = time.perf_counter()
    one(warm, random.Random(), 0)  # builds the process's shared members and states (a new image each round)
    warmup = time.perf_counter() - started
    warm.close()
    deadline = time.perf_counter() + seconds

    def worker(user: int) -> tuple[int, int]:
        client = make_client(registry, settings)
        rng = random.Random(f"{kind}-{user}-{time.time_ns()}")
        n = sent = 0
        while time.perf_counter() < deadline:
            sent += one(client, rng, user)
            n += 1
        client.close()
        return n, sent

    cpu, reg_cpu = time.process_time(), cpu_of(registry_pid)
    started = time.perf_counter()
    greenlets = [gevent.spawn(worker, u) for u in range(users)]
    gevent.joinall(greenlets, raise_error=True)
    elapsed = time.perf_counter() - started
    cpu, reg_cpu = time.process_time() - cpu, cpu_of(registry_pid) - reg_cpu
    pushes = sum(g.value[0] for g in greenlets)
    sent = sum(g.value[1] for g in greenlets)
    return {
        "pushes": pushes,
        "seconds": elapsed,
        "pps": pushes / elapsed,
        "mbps": sent / elapsed / MB,
        "cpu_ms": cpu / pushes * 1e3 if pushes else 0.0,
        "registry_cpu_ms": reg_cpu / pushes * 1e3 if pushes else 0.0,
        "warmup_s": warmup,
    }


def run_leg(kind: str, url: str, args: argparse.Namespace, size: int, registry_pid: int) -> dict:
    spec = [kind, url, args.layers, size, args.users, args.seconds, registry_pid]
    out = subprocess.run(
        [PYTHON, __file__, "--_leg", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=args.seconds * 4 + 120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"leg {kind} failed: {(out.stderr or out.stdout).strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- floors: no network, this process ---------------------------------------------------------------


def floor_generate(kind: str, layers: int, size: int, seconds: float) -> float:
    """Unique images/s whose layer bytes are made alone (after one warm-up image)."""

    def make(seed: int) -> int:
        n = 0
        for blob in image_of(kind, [size] * layers, seed).layers:
            if isinstance(blob, SyntheticLayer):
                chunks: Iterator[bytes | memoryview] = blob._chunks()  # the noise, without its hash
            else:
                if isinstance(blob, GzipLayer):
                    blob.descriptor()  # its digest: the cached states and its unique member
                chunks = blob.open()
            for chunk in chunks:
                n += len(chunk)
        return n

    make(-1)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        make(count)
        count += 1
    return count / (time.perf_counter() - started)


def floor_sha256(layers: int, size: int, seconds: float) -> float:
    """Images/s if each image's layer bytes were only hashed once (sha256, 1 MiB pieces)."""
    import hashlib

    piece = os.urandom(1 << 20)
    view = memoryview(piece)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(layers):
            h, left = hashlib.sha256(), size
            while left > 0:
                h.update(view[: min(left, len(piece))])
                left -= len(piece)
        count += 1
    return count / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="tiny: 2 layers of 256KiB, 1 round of 2 s per leg")
    parser.add_argument("--layers", type=int, default=3, help="layers per image (default 3)")
    parser.add_argument("--size", default="4MiB", help="layer blob size (default 4MiB)")
    parser.add_argument("--users", type=int, default=4, help="concurrent pushers (default 4)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per leg and round (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each leg's best counts (default 2)")
    parser.add_argument("--_leg", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._leg:
        print(json.dumps(push_leg(*json.loads(args._leg))))
        return 0
    if args.short:
        args.layers, args.size, args.seconds, args.rounds = 2, "256KiB", 2.0, 1
    size = parse_size(args.size, "--size")

    from regload.local_registry import LocalRegistry

    one, five, _ = os.getloadavg()
    print(
        f"push gzip: unique images of {args.layers} layer(s) of {size} bytes, {args.users} users,"
        f" {args.rounds} round(s) of {args.seconds:g} s per leg"
    )
    print(f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs")
    best: dict[str, dict] = {}
    with LocalRegistry() as registry:
        pid = registry.pid
        assert pid is not None
        print(f"registry: docker-registry at {registry.url}")
        for _ in range(args.rounds):
            for kind in KINDS:  # taking turns, so a change in the machine's load hits all alike
                result = run_leg(kind, registry.url, args, size, pid)
                if kind not in best or result["pps"] > best[kind]["pps"]:
                    best[kind] = result
    print("\npushes through the push flow (best round):")
    for kind in KINDS:
        r = best[kind]
        print(
            f"  {LABELS[kind]:<44} {r['pps']:8.1f} pushes/s  {r['mbps']:8.1f} MB/s"
            f"  client {r['cpu_ms']:7.2f} ms CPU/push  registry {r['registry_cpu_ms']:7.2f} ms CPU/push"
            f"  (warm-up {r['warmup_s']:.2f} s, {r['pushes']} pushes)"
        )
    floor_seconds = max(0.5, args.seconds / 4)
    print("\nfloors, one core, no network (unique images/s):")
    floors = {kind: floor_generate(kind, args.layers, size, floor_seconds) for kind in KINDS}
    labels = {"noise": "noise bytes generated alone", "gzip": "gzip layers made alone", "naive": "naive compression"}
    for kind in KINDS:
        print(f"  {labels[kind] + ' (no hash)' * (kind == 'noise'):<44} {floors[kind]:10.1f} images/s")
    sha = floor_sha256(args.layers, size, floor_seconds)
    print(f"  {'sha256 alone, one pass over the layers':<44} {sha:10.1f} images/s")
    print("\nratios:")
    g, n, v = best["gzip"]["pps"], best["noise"]["pps"], best["naive"]["pps"]
    print(f"  gzip / noise pushes/s                        {g / n:6.2f}x")
    print(f"  gzip / naive pushes/s                        {g / v:6.2f}x")
    print(f"  client CPU per push, naive / gzip            {best['naive']['cpu_ms'] / best['gzip']['cpu_ms']:6.2f}x")
    print(f"  client CPU per push, noise / gzip            {best['noise']['cpu_ms'] / best['gzip']['cpu_ms']:6.2f}x")
    print(f"  gzip layers made alone / sha256 alone        {floors['gzip'] / sha:6.2f}x images/s")
    print(f"  noise generated alone / sha256 alone         {floors['noise'] / sha:6.2f}x images/s")
    print(f"  naive compression / sha256 alone             {floors['naive'] / sha:6.2f}x images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
