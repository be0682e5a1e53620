"""The pull pool against a real docker-registry: families share their base blobs (each uploaded
once, stored once), images pull and verify, a second seeding of the same spec pushes nothing, a
pool of another spec takes none of its images, and 1,000 images seed in bounded time.

Seeding runs as ``bench/pool_seed.py`` does it (a child process patched for gevent), through the
fault proxy, which counts every request by endpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from regload.local_registry import LocalRegistry
from regload.workload.pool_layout import PoolSpec
from regload.workload.sizes import parse_size_distribution
from tests.support.cli import regload
from tests.support.fault_proxy import FaultProxy

pytestmark = pytest.mark.registry

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "pool_seed.py"


@pytest.fixture
def registry(tmp_path: Path) -> Any:
    """A registry of this test's own: its storage holds only what the test pushed."""
    local = LocalRegistry(storage_dir=tmp_path / "storage").start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def proxy(registry: Any) -> Any:
    with FaultProxy(registry.url) as p:
        yield p


def seed(url: str, images: int, *args: str, rounds: int = 1, timeout: float = 120) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH), "--url", url, "--images", str(images), "--rounds", str(rounds), "--json"]
    done = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def stored_blobs(storage: Path) -> int:
    return sum(1 for _ in (storage / "docker/registry/v2/blobs/sha256").glob("*/*/data"))


def test_families_share_base_blobs_uploaded_and_stored_once(registry, proxy):
    # 24 images, 3 families of 2 base layers (the OS layer shared by all), 1 own layer each, over
    # 2 repositories: images of one family sit in both, so some base blobs are mounted.
    out = seed(proxy.url, 24, "--families", "3", "--base-layers", "2", "--repos", "2", "--layer-size", "2KiB")
    assert out["rounds"][0]["pushed"] == 24
    counts = proxy.counters().requests_by_endpoint
    unique = 1 + 3 + 24 + 24  # the OS layer, one layer per family, each image's own layer and config
    assert counts.get("PUT upload") == unique, counts  # every blob uploaded once, whatever shares it
    # Each base blob is placed in each repository once: the OS layer and 3 family layers, each
    # mounted into the repository its first holder is not in. Two mounts of one blob into one
    # repository race a manifest PUT there into DIGEST_INVALID (see PoolPusher).
    assert counts.get("POST upload") == unique + 4, counts
    assert counts.get("HEAD blob") == 4, counts  # in their home repository, by the first image after
    assert counts.get("PUT manifest") == 24, counts
    assert stored_blobs(registry.storage_dir) == unique + 24  # and the manifests

    spec = PoolSpec(layers=1, layer_size=parse_size_distribution("2KiB", "size"), families=3, base_layers=2)
    assert spec.fingerprint == out["fingerprint"]
    layers = {}
    for index in (1, 4, 5):  # families 1, 1, 2; repositories 1, 0, 1
        ref = f"{registry.host}/bench/pool-{index % 2}:{spec.tag(index)}"
        run = regload("pull", "--json", ref)
        assert run.code == 0, run.output
        layers[index] = [layer["digest"] for layer in run.json["layers"]]
    assert layers[1][:2] == layers[4][:2] and layers[1][2] != layers[4][2]
    assert layers[1][0] == layers[5][0] and layers[1][1] != layers[5][1]


def test_a_pulled_family_image_unpacks_its_base_and_own_layers(registry, tmp_path):
    seed(registry.url, 4, "--families", "2", "--base-layers", "2", "--repos", "1", "--layer-size", "1KiB")
    spec = PoolSpec(layers=1, layer_size=parse_size_distribution("1KiB", "size"), families=2, base_layers=2)
    rootfs = tmp_path / "rootfs"
    run = regload("pull", "-o", str(rootfs), f"{registry.host}/bench/pool-0:{spec.tag(3)}")
    assert run.code == 0, run.output
    files = sorted(p.name for p in (rootfs / "regload").iterdir())
    assert files == ["layer-1.bin", "layer-2.bin", "layer-3.bin"]
    assert all((rootfs / "regload" / name).stat().st_size == 1024 for name in files)


def test_a_second_seeding_pushes_nothing_and_another_spec_reuses_nothing(registry, proxy):
    args = ("--families", "2", "--base-layers", "2", "--layer-size", "1KiB")
    first = seed(proxy.url, 30, *args)
    assert first["rounds"][0] == {**first["rounds"][0], "pushed": 30, "reused": 0}
    proxy.reset_counters()

    again = seed(proxy.url, 30, *args)
    assert again["fingerprint"] == first["fingerprint"]
    assert (again["rounds"][0]["pushed"], again["rounds"][0]["reused"]) == (0, 30)
    counts = proxy.counters().requests_by_endpoint
    assert counts == {"GET ping": 1, "HEAD manifest": 30}, counts  # one HEAD per image, no upload

    other = seed(proxy.url, 30, "--families", "2", "--base-layers", "2", "--layer-size", "2KiB")
    assert other["fingerprint"] != first["fingerprint"]
    assert (other["rounds"][0]["pushed"], other["rounds"][0]["reused"]) == (30, 0)


def test_a_thousand_images_seed_in_bounded_time(registry):
    # 1,000 images of one tiny own layer on 4 families' 2 base layers. A docker-registry on this
    # kind of machine spends ~30 ms of CPU per image pushed (bench/pool_seed.py measures 10,000).
    out = seed(registry.url, 1000, "--families", "4", "--base-layers", "2", "--layer-size", "256B", timeout=170)
    assert out["rounds"][0]["pushed"] == 1000
    print(f"1,000 pool images seeded in {out['rounds'][0]['seconds']:.1f} s")
