"""What ``--registry-http2`` costs: the httpx transport (HTTP/2 over TLS) beside the default socket
transport (HTTPS/1.1) on the same manifest GET loop against docker-registry with a test
certificate, on loopback.

    /work/venv/bin/python bench/http2_cost.py             # 10 s per transport, 16 greenlets
    /work/venv/bin/python bench/http2_cost.py --short     # 2 s per transport (CI)

Each transport runs in a child process of its own: N greenlets, each with its own
``RegistryClient`` (as each Locust user has), GET the manifest of a small image again and again
(``regload.endpoints.get_manifest``: Accept header, digest check). Printed: requests/s and the
client's CPU µs per request for each, and the ratios. The registry (~1,400 manifest GETs/s on a
2-core machine) bounds requests/s; CPU per request is the client's own cost.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PYTHON, REGLOAD, header  # noqa: E402


def worker(url: str, ca: str, http2: bool, users: int, seconds: float, repository: str, tag: str) -> dict[str, float]:
    from gevent import monkey

    monkey.patch_all()
    import gevent

    from regload import endpoints
    from regload.reference import Reference, Registry
    from regload.wiring.connect import ClientSettings, make_client

    registry = Registry.from_url(url)
    ref = Reference(registry, repository).with_reference(tag)
    settings = ClientSettings(ca_cert=ca, connections_per_host=4, http2=http2)
    clients = [make_client(registry, settings) for _ in range(users)]
    for client in clients:  # connect (TLS handshakes) outside the measurement
        endpoints.get_manifest(client, ref)
    versions = set().union(*(c.http_versions for c in clients))
    counts = [0] * users
    deadline = time.perf_counter() + seconds

    def loop(i: int) -> None:
        client, n = clients[i], 0
        while time.perf_counter() < deadline:
            endpoints.get_manifest(client, ref)
            n += 1
        counts[i] = n

    started, cpu = time.perf_counter(), time.process_time()
    gevent.joinall([gevent.spawn(loop, i) for i in range(users)], raise_error=True)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    n = sum(counts)
    return {"requests": n, "rps": n / elapsed, "cpu_us": cpu / n * 1e6, "versions": ",".join(sorted(versions))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="2 s per transport (CI smoke run)")
    parser.add_argument("--seconds", type=float, help="run time per transport (default 10, --short 2)")
    parser.add_argument("--users", type=int, default=16, help="concurrent greenlets, one client each (default 16)")
    parser.add_argument("--_worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._worker:
        print(json.dumps(worker(*json.loads(args._worker))))
        return 0
    seconds = args.seconds or (2.0 if args.short else 10.0)

    from regload.local_registry import LocalRegistry
    from tests.support.pki import make_server_pki

    with tempfile.TemporaryDirectory(prefix="regload-bench-h2-") as tmp:
        pki = make_server_pki(Path(tmp) / "pki")
        with LocalRegistry(tls=(pki.server_cert, pki.server_key)) as registry:
            registry.start()
            repository, tag = "bench/h2", "v1"
            push = subprocess.run(
                [REGLOAD, "push", "synthetic:layers=1,size=4KiB,seed=1", f"{repository}:{tag}"]
                + ["--registry", registry.url, "--registry-ca-cert", str(pki.ca_cert)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if push.returncode:
                print(push.stderr, file=sys.stderr)
                return 1
            header(
                f"manifest GET loop against docker-registry (TLS) at {registry.url}, "
                f"{args.users} greenlets, {seconds:g} s each"
            )
            results = {}
            for name, http2 in (("socket transport (HTTP/1.1)", False), ("httpx transport (--registry-http2)", True)):
                spec = [registry.url, str(pki.ca_cert), http2, args.users, seconds, repository, tag]
                out = subprocess.run(
                    [PYTHON, __file__, "--_worker", json.dumps(spec)],
                    capture_output=True,
                    text=True,
                    timeout=seconds * 4 + 60,
                )
                if out.returncode:
                    print(out.stderr[-3000:], file=sys.stderr)
                    return 1
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results[http2] = r
                print(
                    f"{name:<28} {r['rps']:>8.0f} req/s {r['cpu_us']:>7.0f} µs CPU/req  "
                    f"({r['requests']} requests, {r['versions']})",
                    flush=True,
                )
    g, h = results[False], results[True]
    header("ratios")
    print(
        f"--registry-http2 / default: {h['rps'] / g['rps']:4.2f}× req/s,"
        f" {h['cpu_us'] / g['cpu_us']:4.2f}× CPU per request"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
