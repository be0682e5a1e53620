"""The public surface: what a script or a scenario of one's own imports from ``regload`` and
``regload.locust``, pinned (httpx's test_exported_members is the model): a name added or taken
away is a decision, made here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import regload

pytestmark = pytest.mark.unit

REGLOAD = [
    "ClientSettings",
    "Credentials",
    "DigestMismatch",
    "DiscardSink",
    "DockerArchiveSink",
    "GeventRunner",
    "OciLayoutSink",
    "PullOptions",
    "PullResult",
    "PushOptions",
    "PushResult",
    "Reference",
    "Registry",
    "RegistryClient",
    "RegistryError",
    "RegloadError",
    "RootfsSink",
    "SequentialRunner",
    "Sink",
    "SourceImage",
    "TransportError",
    "UsageError",
    "__version__",
    "make_client",
    "make_sink",
    "open_source",
    "parse_reference",
    "pull",
    "push",
    "synthetic_image",
    "synthetic_image_of",
]
LOCUST = ["LoadRun", "PullUser", "PushUser", "RegistryUser", "StormUser", "TraceUser", "install"]
ROOT = Path(__file__).resolve().parent.parent


def test_regload_exports_what_a_script_needs():
    assert sorted(regload.__all__) == sorted(REGLOAD)
    assert sorted(dir(regload)) == sorted(REGLOAD)
    for name in regload.__all__:
        value = getattr(regload, name)
        assert name == "__version__" or getattr(value, "__name__", None) == name, name
    assert callable(regload.pull) and callable(regload.push)  # the flows, not their modules
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        regload.nothing  # noqa: B018


def test_the_surface_comes_from_the_core_and_the_wiring_only():
    """``__init__`` imports its names when asked, by module name (tests/test_layering.py sees no
    import statement): none from a front end, the workload or the options."""
    layers = {module.lstrip(".").split(".")[0] for module in regload._EXPORTS.values()}
    assert layers <= {"auth", "client", "concurrency", "errors", "flows", "reference", "sinks", "sources", "wiring"}


def test_regload_locust_exports_the_user_classes_and_the_run():
    """In a child: importing the user classes imports Locust, which patches the interpreter."""
    script = (
        "import json, regload.locust as m;"
        "print(json.dumps({'all': sorted(m.__all__), 'names': {n: getattr(m, n).__name__ for n in m.__all__}}))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["all"] == sorted(LOCUST)
    assert out["names"] == {name: name for name in LOCUST}
