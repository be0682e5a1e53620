"""A scenario of your own on regload's ``RegistryUser``: a CI job that pushes the image it built,
pulls it back, then pulls its base image the way containerd does (HEAD the manifest, then GET
it by digest).

    locust -f examples/custom_scenario.py --headless -u 20 -r 5 -t 5m      # local registry
    locust -f examples/custom_scenario.py --host http://registry:5000       # web UI

Every regload option applies (--upload-mode, --push-layers, --push-layer-size, --repos, ...).
The stats have the usual endpoint rows and ``PULL image`` / ``PUSH image`` rows.
"""

import random

from locust import between, task

from regload.locust import RegistryUser
from regload.sources.synthetic import synthetic_image, synthetic_image_of

BASE_REPOSITORY, BASE_TAG = "ci/base", "bookworm"
rng = random.Random()


class CIUser(RegistryUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        # The base image every job builds on: the same seed each time, so once one user has
        # pushed it the others only HEAD its blobs.
        self.push_image(synthetic_image(layers=2, size=1 << 20, seed=1), BASE_REPOSITORY, BASE_TAG)

    @task
    def build_push_pull(self) -> None:
        s = self.settings
        seed = rng.getrandbits(63)
        sizes = [s.push_layer_size.sample(rng) for _ in range(s.push_layers)]
        repository = s.repository(rng.randrange(s.repos))
        tag = f"ci-{seed:016x}"
        if self.push_image(synthetic_image_of(sizes, seed), repository, tag):  # None when it failed
            self.pull_image(repository, tag)
        self.pull_image(BASE_REPOSITORY, BASE_TAG, head_first=True)
