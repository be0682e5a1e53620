"""A scenario of your own on regload's ``RegistryUser``: a CI job that pushes the image it built,
pulls it back, then pulls its base image the way containerd does (HEAD the manifest, then GET
it by digest).

    locust -f examples/custom_scenario.py --headless -u 20 -r 5 -t 5m      # local registry
    locust -f examples/custom_scenario.py --host http://registry:5000       # web UI

Every regload option applies (--upload-mode, --push-layers, --push-layer-size, --repos, ...).
The stats have the usual endpoint rows and ``PULL image`` / ``PUSH image`` rows.
"""

import random

from gevent.lock import Semaphore
from locust import between, task

from regload.locust import RegistryUser
from regload.sources.synthetic import synthetic_image, synthetic_image_of

BASE_REPOSITORY, BASE_TAG = "ci/base", "bookworm"
rng = random.Random()
base_lock = Semaphore()
base_pushed = False


class CIUser(RegistryUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        # The base image every job builds on exists before the jobs run: the first user pushes
        # it, the others wait. (Concurrent pushes of the same blob to one repository can make
        # distribution's filesystem storage answer DIGEST_INVALID: it reads a link file that
        # another upload is still writing.)
        global base_pushed
        with base_lock:
            if not base_pushed:
                image = synthetic_image(layers=2, size=1 << 20, seed=1)
                base_pushed = self.push_image(image, BASE_REPOSITORY, BASE_TAG) is not None

    @task
    def build_push_pull(self) -> None:
        pushed = self.settings.images  # --push-layers, --push-layer-size, --repos
        seed = rng.getrandbits(63)
        sizes = [pushed.layer_size.sample(rng) for _ in range(pushed.layers)]
        repository = pushed.repository(rng.randrange(pushed.repos))
        tag = f"ci-{seed:016x}"
        if self.push_image(synthetic_image_of(sizes, seed), repository, tag):  # None when it failed
            self.pull_image(repository, tag)
        self.pull_image(BASE_REPOSITORY, BASE_TAG, head_first=True)
