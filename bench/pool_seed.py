"""Seeding the pull pool: how long ``N`` pool images take to push, and a second round that finds
them all (HEAD per tag, nothing pushed).

    .venv/bin/python bench/pool_seed.py                       # 10,000 images, 4 families, local registry
    .venv/bin/python bench/pool_seed.py --images 1000 --json  # one JSON line: the rounds' counts
    .venv/bin/python bench/pool_seed.py --url http://127.0.0.1:5000 --rounds 1

Images are tiny (one own layer of ``--layer-size`` on ``--base-layers`` shared ones), so the
figure is the registry's cost per image (its uploads, links and manifest checks), not bytes.
Without ``--url`` a local ``docker-registry`` is started (storage in a temporary directory, or
``--storage``) and its CPU time is reported beside the wall time.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after the patching, as in a Locust process)
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from regload.client import NULL_OBSERVER  # noqa: E402
from regload.local_registry import LocalRegistry  # noqa: E402
from regload.reference import Registry  # noqa: E402
from regload.wiring.connect import ClientSettings, make_client  # noqa: E402
from regload.workload.pool_layout import PoolSpec  # noqa: E402
from regload.workload.pool_seed import seed_images  # noqa: E402
from regload.workload.sizes import parse_size_distribution  # noqa: E402


def _cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--families", type=int, default=4)
    p.add_argument("--base-layers", type=int, default=2)
    p.add_argument("--layers", type=int, default=1, help="own layers per image")
    p.add_argument("--layer-size", default="256B")
    p.add_argument("--jobs", type=int, default=16, help="images pushed at once (--pool-seed-jobs)")
    p.add_argument("--repos", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--url", help="a registry to seed (default: start a local docker-registry)")
    p.add_argument("--storage", help="storage directory of the local registry")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    args = p.parse_args()

    local = None if args.url else LocalRegistry(storage_dir=args.storage).start()
    url = args.url or local.url  # type: ignore[union-attr]
    pid = local.pid if local is not None else None
    spec = PoolSpec(
        layers=args.layers,
        layer_size=parse_size_distribution(args.layer_size, "--layer-size"),
        families=args.families,
        base_layers=args.base_layers,
    )
    registry = Registry.from_url(url)
    settings = ClientSettings(plain_http=True, connections_per_host=args.jobs * 2 + 1)
    rounds = []
    try:
        for number in range(1, args.rounds + 1):
            client = make_client(registry, settings, observer=NULL_OBSERVER)
            before = _cpu_seconds(pid)
            try:
                counts = seed_images(
                    client, registry, spec, args.images, lambda i: f"bench/pool-{i % args.repos}", args.jobs, 2
                )
            finally:
                client.close()
            after = _cpu_seconds(pid)
            cpu = after - before if after is not None and before is not None else None
            rounds.append({"pushed": counts.pushed, "reused": counts.reused, "seconds": counts.seconds, "cpu": cpu})
            if not args.json:
                rate = args.images / counts.seconds if counts.seconds else 0.0
                extra = f", registry CPU {cpu:.1f} s" if cpu is not None else ""
                print(f"round {number}: {args.images} images: {counts} ({rate:.0f} images/s{extra})", flush=True)
    finally:
        if local is not None:
            local.stop()
    if args.json:
        print(json.dumps({"images": args.images, "fingerprint": spec.fingerprint, "rounds": rounds}))


if __name__ == "__main__":
    main()
