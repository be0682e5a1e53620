"""The pull pool's pure parts: image families and their layers, the spec's fingerprint, the
seeding order, popularity over the pool, and the queue of pushed images to pull once."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from regload.errors import UsageError
from regload.locust.options import settings_from
from regload.reference import Registry
from regload.workload.fresh import FreshQueue, PullAfterPush
from regload.workload.pool import MAX_POOL, ImagePool, PoolImage
from regload.workload.pool_layout import PoolSpec
from regload.workload.pool_seed import seed_order
from regload.workload.sizes import Fixed, Uniform

pytestmark = pytest.mark.unit

FAMILIES = PoolSpec(layers=2, layer_size=Uniform(100, 5000), families=3, base_layers=3)


def roles(spec: PoolSpec, index: int) -> list[str]:
    return [p.role for p in spec.plan(index)]


def test_an_image_is_its_familys_base_layers_then_its_own():
    assert roles(FAMILIES, 4) == ["os", "family:1:1", "family:1:2", "image:4:0", "image:4:1"]
    assert [p.position for p in FAMILIES.plan(4)] == [1, 2, 3, 4, 5]
    assert FAMILIES.family(4) == 1 and FAMILIES.family(6) == 0


def test_images_of_a_family_share_base_blobs_and_only_them():
    def digests(index: int) -> list[str]:
        return [str(layer.descriptor().digest) for layer in FAMILIES.image(index).layers]

    one, four, five = digests(1), digests(4), digests(5)  # families 1, 1, 2
    assert one[:3] == four[:3]  # the OS layer and family 1's two layers
    assert one[0] == five[0] and one[1:3] != five[1:3]  # the OS layer is every family's
    assert not set(one[3:]) & set(four[3:])  # their own layers differ
    assert len(set(one + four + five)) == 3 + 2 + 2 * 3


def test_layer_sizes_are_drawn_from_the_distribution_deterministically():
    again = PoolSpec(layers=2, layer_size=Uniform(100, 5000), families=3, base_layers=3)
    sizes = [p.size for i in range(30) for p in FAMILIES.plan(i)]
    assert sizes == [p.size for i in range(30) for p in again.plan(i)]
    assert all(100 <= s <= 5000 for s in sizes) and len(set(sizes)) > 10
    # A base layer has one size whatever image holds it; the synthetic layer has that content size.
    assert FAMILIES.plan(2)[1].size == FAMILIES.plan(5)[1].size
    assert FAMILIES.image(2).layers[1].content_size == FAMILIES.plan(2)[1].size


def test_without_families_images_have_their_own_layers_only():
    spec = PoolSpec(layers=2, layer_size=Fixed(10), families=0, base_layers=3)
    assert roles(spec, 7) == ["image:7:0", "image:7:1"]
    assert spec.first_holder(7, "image:7:0") is None


def test_first_holders_are_pushed_in_the_phases_before():
    spec = PoolSpec(layers=1, layer_size=Fixed(10), families=4, base_layers=2)
    assert [list(p) for p in seed_order(spec, 10)] == [[0], [1, 2, 3], [4, 5, 6, 7, 8, 9]]
    assert spec.first_holder(9, "os") == 0 and spec.first_holder(9, "family:1:1") == 1
    assert [list(p) for p in seed_order(spec, 2)] == [[0], [1], []]
    independent = PoolSpec(layers=1, layer_size=Fixed(10))
    assert [list(p) for p in seed_order(independent, 3)] == [[0, 1, 2]]


def test_the_fingerprint_changes_with_every_part_of_the_spec():
    base = PoolSpec(layers=1, layer_size=Fixed(1024), families=2, base_layers=2)
    others = [
        PoolSpec(layers=2, layer_size=Fixed(1024), families=2, base_layers=2),
        PoolSpec(layers=1, layer_size=Fixed(1025), families=2, base_layers=2),
        PoolSpec(layers=1, layer_size=Uniform(1024, 1024), families=2, base_layers=2),
        PoolSpec(layers=1, layer_size=Fixed(1024), families=3, base_layers=2),
        PoolSpec(layers=1, layer_size=Fixed(1024), families=2, base_layers=1),
        PoolSpec(layers=1, layer_size=Fixed(1024), families=2, base_layers=2, gzip_ratio=2.6),
    ]
    prints = {base.fingerprint, *(o.fingerprint for o in others)}
    assert len(prints) == 1 + len(others)
    assert PoolSpec(layers=1, layer_size=Fixed(1024), families=2, base_layers=2).fingerprint == base.fingerprint
    assert base.tag(7) == f"pool-{base.fingerprint}-7"
    # Without families the base layers shape nothing: the same images, the same tags.
    assert PoolSpec(1, Fixed(1), 0, 2).fingerprint == PoolSpec(1, Fixed(1), 0, 5).fingerprint


def test_every_process_derives_the_same_pool_list_from_the_options():
    options = SimpleNamespace(
        pull_pool_size=5, pool_families=2, pull_pool_layer_size="1KiB-4KiB", pull_image=["other/app:1"]
    )
    settings = settings_from(options)
    registry = Registry.from_url("http://127.0.0.1:5000")
    seeded, named = settings.pool_images(registry)
    fingerprint = settings.pool_spec().fingerprint
    assert seeded == [PoolImage(f"regload/load-{i % 4}", f"pool-{fingerprint}-{i}") for i in range(5)]
    assert named == [PoolImage("other/app", "1")]
    assert settings_from(options).pool_images(registry) == (seeded, named)


def test_new_options_are_checked():
    for name, value in (("pool_families", "-1"), ("pool_base_layers", "x"), ("pool_seed_jobs", "0")):
        with pytest.raises(UsageError, match=f"--{name.replace('_', '-')}"):
            settings_from(SimpleNamespace(**{name: value}))
    settings = settings_from(SimpleNamespace(pool_families="3", pull_after_push="0.3:2s"))
    assert settings.pool.families == 3 and settings.pool.after_push == PullAfterPush(0.3, 2.0)


class Top:
    """A popularity that always picks index 0, then 1, …"""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def pick(self, rng: random.Random, n: int) -> int:
        self.asked.append(n)
        return len(self.asked) - 1


def test_popularity_ranks_seeded_images_first_and_joined_ones_after():
    pool = ImagePool()
    pool.add(PoolImage("named", "1"))
    pool.set_seeded([PoolImage("r", f"pool-{i}") for i in range(3)])
    pool.add(PoolImage("pushed", "2"))
    top = Top()
    picks = [pool.pick(random.Random(1), top) for _ in range(5)]
    assert [p.reference for p in picks if p] == ["pool-0", "pool-1", "pool-2", "1", "2"]
    assert top.asked == [5] * 5


def test_pushed_images_beyond_the_cap_replace_joined_ones_not_seeded_ones():
    pool = ImagePool()
    pool.set_seeded([PoolImage("r", "seeded")])
    for i in range(MAX_POOL + 50):
        pool.add(PoolImage("pushed", str(i)))
    assert len(pool) == MAX_POOL + 1 and pool.seeded == [PoolImage("r", "seeded")]
    assert pool.pick(random.Random(0), Top()) == PoolImage("r", "seeded")


def test_pull_after_push_syntax():
    assert PullAfterPush.parse("0.3:2s") == PullAfterPush(0.3, 2.0)
    assert PullAfterPush.parse("1") == PullAfterPush(1.0, 0.0)
    assert PullAfterPush.parse("0.5:250ms") == PullAfterPush(0.5, 0.25)
    assert PullAfterPush.parse("") is None and PullAfterPush.parse("0") is None
    for bad in ("x", "1.5", "-0.1", "0.3:soon"):
        with pytest.raises(UsageError, match="--pull-after-push"):
            PullAfterPush.parse(bad)
    rng = random.Random(3)
    chosen = sum(PullAfterPush(0.3).chosen(rng) for _ in range(10_000))
    assert 2700 < chosen < 3300
    assert all(PullAfterPush(1.0).chosen(rng) for _ in range(100))


def test_fresh_images_are_taken_once_each_when_due():
    queue = FreshQueue()
    queue.add(PoolImage("r", "late"), due=10.0)
    queue.add(PoolImage("r", "early"), due=5.0)
    queue.add(PoolImage("r", "early-too"), due=5.0)
    assert queue.take(4.9) is None
    assert queue.take(5.0) == PoolImage("r", "early")
    assert queue.take(9.0) == PoolImage("r", "early-too")
    assert queue.take(9.0) is None
    assert queue.take(11.0) == PoolImage("r", "late")
    assert queue.take(100.0) is None and queue.taken == 3


def test_the_fresh_queue_is_bounded():
    queue = FreshQueue(limit=3)
    for i in range(5):
        queue.add(PoolImage("r", str(i)), due=float(i))
    assert len(queue) == 3 and queue.dropped == 2
    assert [queue.take(10.0) for _ in range(3)] == [PoolImage("r", str(i)) for i in (2, 3, 4)]
