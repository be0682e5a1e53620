"""A locustfile for tests: a user that pushes one OCI layout, then pulls it into rootfs
directories as a node would (``RootfsSink``), inside a Locust process (which monkey-patches the
standard library itself), beside regload's own ``PullUser``.

``REGLOAD_TEST_LAYOUT`` is the layout to push (``DIR:TAG``), ``REGLOAD_TEST_OUT`` the directory the
rootfs go to, ``REGLOAD_TEST_PULLS`` how many; when they are done and the pull pool is seeded,
the run quits."""

from __future__ import annotations

import os
from pathlib import Path

import gevent
from locust import task
from locust.exception import StopUser

from regload.locust import PullUser, RegistryUser
from regload.sinks.rootfs import RootfsSink
from regload.sources.open import open_source

__all__ = ["PullUser", "RootfsPuller"]

REPOSITORY, TAG = "trees/locust", "v1"


class RootfsPuller(RegistryUser):
    fixed_count = 1

    def on_start(self) -> None:
        self.pulls = 0
        if self.push_image(open_source(os.environ["REGLOAD_TEST_LAYOUT"]), REPOSITORY, TAG) is None:
            raise RuntimeError("the push of the test layout failed: see the failures")

    @task
    def pull_to_rootfs(self) -> None:
        if self.pulls < int(os.environ["REGLOAD_TEST_PULLS"]):  # at most that many, failed or not
            out = Path(os.environ["REGLOAD_TEST_OUT"]) / f"rootfs-{self.pulls}"
            self.pulls += 1
            self.pull_image(REPOSITORY, TAG, sink=RootfsSink(out))
            return
        self.load_run.pool.ready.wait(120)
        # From a greenlet of its own: runner.quit() stops every user, this one too, and a user
        # greenlet killed half-way through quit() would leave the run going.
        gevent.spawn(self.environment.runner.quit)
        raise StopUser()
