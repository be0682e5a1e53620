"""Nodes: ``PullUser``s grouped as the pods of one kubelet, which pulls a node's images one at a
time (``--node-users K``, ``--node-parallel-pulls N``).

kubelet serializes image pulls unless ``maxParallelImagePulls`` is 2 or more
(``serializeImagePulls`` defaults to true: kubernetes pkg/kubelet/apis/config/v1beta1/
defaults.go, and pkg/kubelet/images/puller.go's serial puller is one worker on a queue). 500
kubelets pulling after a deploy are then at most 500 pulls at once, however many pods wait: give
``K`` users per node and ``N`` pulls at once per node. A pull's wait for its node is reported on
its own row (``NODE pull queue``): the ``PULL image`` time is the pull's, from when its node let
it start. Nodes are per process: in a distributed run, a worker's users make its own nodes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from gevent.lock import BoundedSemaphore

from ..errors import UsageError


@dataclass(frozen=True)
class NodeSpec:
    users: int = 0  # PullUsers per node; 0: no nodes, every user pulls on its own
    parallel_pulls: int = 1  # kubelet's maxParallelImagePulls (1: serializeImagePulls)

    def __post_init__(self) -> None:
        if self.users < 0 or self.parallel_pulls < 1:
            raise UsageError("--node-users must be 0 or more and --node-parallel-pulls at least 1")


class Node:
    """One node's pull slots."""

    def __init__(self, parallel_pulls: int) -> None:
        self._slots = BoundedSemaphore(parallel_pulls)

    @contextmanager
    def pulling(self) -> Iterator[None]:
        """Wait for a slot of this node, pull, free it (also when the pull fails or is killed)."""
        with self._slots:
            yield


class Nodes:
    """The nodes of this process: the i-th user to ask is on node ``i // users``."""

    def __init__(self, spec: NodeSpec) -> None:
        self.spec = spec
        self._count = itertools.count()
        self._nodes: dict[int, Node] = {}

    def join(self) -> Node | None:
        """The node of a new user, or None when there are no nodes."""
        if self.spec.users == 0:
            return None
        index = next(self._count) // self.spec.users
        node = self._nodes.get(index)
        if node is None:
            node = self._nodes[index] = Node(self.spec.parallel_pulls)
        return node
