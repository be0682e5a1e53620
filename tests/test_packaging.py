"""How regload ships: package metadata, the commands' help, docker compose files, the Dockerfile,
and the custom-scenario example (run for real against a local registry)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: A sample of the options regload adds to Locust (regload/locust/options.py).
LOCUST_OPTIONS = (
    "--upload-mode",
    "--push-layer-size",
    "--pull-pool-size",
    "--pull-head-first",
    "--token-cache",
    "--registry-password",
    "--check-fail-ratio",
    "--check-percentile",
)


def run(*args: str, timeout: float = 60, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def load_yaml(path: Path) -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover
        pytest.fail("pyyaml is needed to check the compose files: it belongs in the test extras")
    return yaml.safe_load(path.read_text())


# -- pyproject.toml ------------------------------------------------------------------------


@pytest.mark.unit
def test_pyproject_declares_the_console_script_and_runtime_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["regload"] == "regload.cli.entry:main"
    requirements = {}
    for text in project["dependencies"]:
        m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[([^\]]*)\])?", text)
        assert m, text
        requirements[m.group(1).lower()] = {e.strip() for e in (m.group(2) or "").split(",") if e.strip()}
    for name in ("locust", "gevent", "geventhttpclient", "httpx", "httptools", "isal"):
        assert name in requirements, f"{name} missing from [project] dependencies"
    assert "http2" in requirements["httpx"]
    assert "pyyaml" not in requirements  # only the tests read YAML


# -- help ----------------------------------------------------------------------------------


@pytest.mark.unit
def test_regload_help_lists_the_commands_and_their_options():
    top = run("-m", "regload", "--help")
    assert top.returncode == 0, top.stderr
    for command in ("pull", "push", "tags", "inspect"):
        assert command in top.stdout
    push = run("-m", "regload", "push", "--help")
    assert push.returncode == 0, push.stderr
    for option in ("--upload-mode", "--chunk-size", "--mount-from", "--no-check-existing"):
        assert option in push.stdout


@pytest.mark.locust_run
def test_locust_help_runs():
    result = run("-m", "locust", "-f", "locustfile.py", "--help")
    assert result.returncode == 0, result.stderr
    assert "--headless" in result.stdout and "--master" in result.stdout


@pytest.mark.unit
def test_locust_parser_has_the_regload_options():
    # What the command line, the web UI's custom parameters and the workers see.
    code = "import locustfile\nfrom locust.argument_parser import get_parser\nprint(get_parser().format_help())"
    result = run("-c", code)
    assert result.returncode == 0, result.stderr
    for option in LOCUST_OPTIONS:
        assert option in result.stdout


@pytest.mark.locust_run
@pytest.mark.xfail(
    strict=True,
    reason="Locust 2.47 prints --help before it imports the locustfile, so options that a locustfile "
    "adds never appear there (locustio/locust#2917); docs/reference/options.md lists them instead",
)
def test_locust_help_lists_the_regload_options():
    result = run("-m", "locust", "-f", "locustfile.py", "--help")
    assert "--upload-mode" in result.stdout


@pytest.mark.locust_run
def test_locust_lists_the_user_classes():
    result = run("-m", "locust", "-f", "locustfile.py", "--list")
    assert result.returncode == 0, result.stderr
    classes = set(result.stdout.split())
    assert {"PullUser", "PushUser"} <= classes
    assert "RegistryUser" not in classes  # abstract


# -- docker --------------------------------------------------------------------------------


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def builds_this_directory(service: dict[str, Any]) -> bool:
    build = service.get("build")
    context = build.get("context") if isinstance(build, dict) else build
    return context in (".", "./")


@pytest.mark.unit
def test_compose_runs_a_registry_a_master_and_scalable_workers():
    compose = load_yaml(ROOT / "docker-compose.yml")
    services = compose["services"]
    assert {"registry", "master", "worker"} <= set(services)

    registry = services["registry"]
    assert registry["image"].startswith("registry:2")
    named = [v.split(":", 1)[0] for v in registry.get("volumes", []) if isinstance(v, str)]
    assert any(name in (compose.get("volumes") or {}) for name in named), "registry storage on a named volume"

    master = services["master"]
    assert builds_this_directory(master)
    assert any(str(p).split(":")[-2:] == ["8089", "8089"] for p in master["ports"])
    args = command_of(master)
    assert "--master" in args
    assert re.search(r"--host[= ]http://registry:5000\b", " ".join(args))
    assert any(a.startswith("--upload-mode") for a in args)

    worker = services["worker"]
    assert builds_this_directory(worker)
    # Scalable with --scale worker=N: nothing that would clash between replicas.
    assert "container_name" not in worker and "ports" not in worker
    args = command_of(worker)
    assert "--worker" in args
    assert re.search(r"--master-host[= ]master\b", " ".join(args))


@pytest.mark.unit
def test_compose_headless_override_runs_a_ci_run():
    override = load_yaml(ROOT / "examples" / "docker-compose.headless.yml")
    args = command_of(override["services"]["master"])
    assert {"--master", "--headless"} <= set(args)
    assert any(a.startswith("--expect-workers") for a in args)
    assert any(a.startswith("--run-time") for a in args)
    assert any(a.startswith("--check-fail-ratio") for a in args)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    text = "\n".join(
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if not line.lstrip().startswith("#")
    )
    logical = re.sub(r"\\\n", " ", text).splitlines()
    return [(op.upper(), rest.strip()) for op, _, rest in (line.strip().partition(" ") for line in logical) if op]


@pytest.mark.unit
def test_dockerfile_installs_the_package_and_runs_locust_as_a_user():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [rest for op, rest in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(op == "RUN" and "pip install" in rest for op, rest in instructions)
    entrypoint = json.loads(next(rest for op, rest in instructions if op == "ENTRYPOINT"))
    assert entrypoint[:2] == ["locust", "-f"]
    # Every COPY source exists and is not excluded by .dockerignore (no docker here to build it).
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for op, rest in instructions:
        if op == "COPY":
            *sources, _ = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") not in ignored, source


# -- the example scenario ------------------------------------------------------------------


@pytest.mark.locust_run
def test_custom_scenario_example_runs_without_failures(tmp_path):
    # No --host: regload starts a local docker-registry itself and says so.
    result = run(
        "-m",
        "locust",
        "-f",
        str(ROOT / "examples" / "custom_scenario.py"),
        "--headless",
        "-u",
        "3",
        "-r",
        "3",
        "-t",
        "4s",
        "--push-layer-size",
        "64KiB",
        "--json-file",
        str(tmp_path / "run"),
        timeout=90,
        cwd=tmp_path,
    )
    log = result.stderr[-3000:]
    assert result.returncode == 0, log
    assert "started a local docker-registry" in result.stderr
    rows = {(r["method"], r["name"]): r for r in json.loads((tmp_path / "run.json").read_text())}
    counts = {key: (r["num_requests"], r["num_failures"]) for key, r in rows.items()}
    assert sum(failures for _, failures in counts.values()) == 0, (counts, log)
    for key in (("PUSH", "image"), ("PULL", "image"), ("HEAD", "/v2/<name>/manifests/<reference>")):
        assert counts.get(key, (0, 0))[0] > 0, (key, counts, log)


# -- the README's first command ------------------------------------------------------------


@pytest.mark.locust_run
def test_the_readme_first_command_runs_the_main_job_on_the_embedded_registry():
    """What a new user runs first: a short headless load on the throwaway registry, with
    nothing else set up. Run as written (``./dev setup`` aside: it is how these tests started)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set up and run", 1)[1].split("\n## ", 1)[0]
    command = re.search(r"```sh\n(.*?)\n```", section, re.S)[1]  # type: ignore[index]
    setup, _, first = command.partition(" && ")
    assert setup == "./dev setup" and first.startswith(".venv/bin/locust -f locustfile.py --headless"), command
    argv = first.split()[1:]  # the locust of the interpreter running the tests
    assert "--host" not in argv
    result = run("-m", "locust", *argv, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "started a local docker-registry" in result.stderr
    output = result.stdout + result.stderr  # Locust prints its summary to stderr
    for row in ("PULL     image", "PUSH     image", "GET      /v2/<name>/blobs/<digest>"):
        assert re.search(rf"^{re.escape(row)} +[1-9][0-9]* +0\(0\.00%\)", output, re.M), output[-4000:]
    assert re.search(r"regload throughput: pulled [0-9.]+ MiB in [1-9]", output)
    storage = Path(re.search(r"\(storage (\S+)\)", result.stderr)[1])  # type: ignore[index]
    assert not storage.parent.exists(), "the throwaway registry's files are left behind"
