"""deploy/kubernetes, checked offline (no cluster, no kustomize binary here).

Each kustomization (the base and the overlays) is built as kustomize would for the features they
use (resources, a ConfigMap generator, strategic-merge patches, namespace, images, replicas: any
other field fails the build here, so the imitation never silently falls behind the files), every
object is validated with kubernetes-validate in strict mode against a pinned Kubernetes version,
and the references between them are checked: Service selectors and pod labels, ports by name and
number, the ConfigMap the pods mount and the locustfile path Locust is given, the master's Service
name the workers are given, the image and its user, the writable places under a read-only root.
The master's and workers' command lines are parsed by Locust's parser with regload's options, in
a Python child, and regload checks their values as it would at start. The Locust operator's
``LocustTest`` (a custom resource: no core schema) is checked against the fields of its CRD, its
core parts (resources, security contexts, volumes, env) validated strictly inside a Pod.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
BASE = DEPLOY / "base"
EXAMPLE = DEPLOY / "overlays" / "example"
HEADLESS = DEPLOY / "overlays" / "headless"
OPERATOR = DEPLOY / "locust-operator"
KUSTOMIZATIONS = (BASE, EXAMPLE, HEADLESS)

#: The Kubernetes version whose API schemas the manifests must pass (kubernetes-validate ships
#: them; it picks the newest it has that is not newer).
K8S_VERSION = "1.31.0"

#: What the image built from the Dockerfile has (checked against it below).
IMAGE_NAME = "regload"
IMAGE_UID = 10001
WORKDIR = "/home/regload"

METRICS_PORT = 9646  # --metrics-port on the master, the Service's `metrics` port
MASTER_PORT = 5557  # Locust's default --master-port
WEB_PORT = 8089

CLUSTER_SCOPED = {"Namespace"}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}
LABELS = {"app.kubernetes.io/name": "regload"}


# -- a kustomize build, for the features the files use ------------------------------------------

KUSTOMIZATION_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "configMapGenerator",
    "patches",
    "namespace",
    "images",
    "replicas",
}
#: Strategic merge: the lists merged item by item, on this key (Kubernetes' patchMergeKey).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
}


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """``patch`` merged into ``base`` as a strategic-merge patch: maps recursively, lists with a
    merge key item by item, other lists and scalars replaced, null deletes."""
    if isinstance(base, dict) and isinstance(patch, dict):
        directives = [key for key in patch if key.startswith("$")]
        assert not directives, f"patch directives {directives} are not imitated here"
        merged = dict(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = strategic_merge(merged[key], value, key) if key in merged else value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and any(isinstance(item, dict) for item in patch):
        assert field in MERGE_KEYS, f"list {field!r} of maps: its merge key is not imitated here"
        key = MERGE_KEYS[field]
        merged_list = list(base)
        for item in patch:
            at = [i for i, existing in enumerate(merged_list) if existing.get(key) == item[key]]
            if at:
                merged_list[at[0]] = strategic_merge(merged_list[at[0]], item)
            else:
                merged_list.append(item)
        return merged_list
    return patch


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] in POD_TEMPLATE_KINDS:
        return [obj["spec"]["template"]["spec"]]
    if obj["kind"] == "Pod":
        return [obj["spec"]]
    return []


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for spec in pod_specs(obj) for c in spec.get("initContainers", []) + spec["containers"]]


def image_name(image: str) -> str:
    """``registry:5000/path/name:tag@digest`` without its tag and digest."""
    name = image.split("@")[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def build(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kustomize build directory`` prints, for the features used here."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    unknown = set(kustomization) - KUSTOMIZATION_FIELDS
    assert not unknown, f"{directory}: fields this test's kustomize does not imitate: {sorted(unknown)}"

    objects: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        assert path.exists(), f"{directory}/kustomization.yaml: resource {entry} does not exist"
        objects += build(path) if path.is_dir() else load_documents(path)

    renamed: dict[str, str] = {}
    for generator in kustomization.get("configMapGenerator", []):
        assert set(generator) <= {"name", "files"}, generator
        data = {}
        for entry in generator["files"]:
            path = (directory / entry).resolve()
            # kustomize's load restrictor: no file from outside the kustomization's directory.
            assert path.is_relative_to(directory.resolve()), f"{entry}: outside {directory}"
            assert path.is_file(), f"{directory}/kustomization.yaml: file {entry} does not exist"
            data[path.name] = path.read_text()
        config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data}
        # kustomize appends a hash of the content (its own encoding; any hash shows the renaming).
        digest = hashlib.sha256(json.dumps(config_map, sort_keys=True).encode()).hexdigest()[:10]
        renamed[generator["name"]] = config_map["metadata"]["name"] = f"{generator['name']}-{digest}"
        objects.append(config_map)

    for patch in kustomization.get("patches", []):
        assert set(patch) == {"path"}, f"{patch}: only strategic-merge patch files are imitated here"
        path = directory / patch["path"]
        assert path.is_file(), f"{directory}/kustomization.yaml: patch {patch['path']} does not exist"
        body = yaml.safe_load(path.read_text())
        assert isinstance(body, dict), f"{path}: a JSON 6902 patch needs a target, not imitated here"
        targets = [
            i
            for i, obj in enumerate(objects)
            if (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
            == (body["apiVersion"], body["kind"], body["metadata"]["name"])
        ]
        assert len(targets) == 1, f"{path}: matches {len(targets)} objects"
        objects[targets[0]] = strategic_merge(objects[targets[0]], body)

    if "namespace" in kustomization:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = kustomization["namespace"]

    for replacement in kustomization.get("images", []):
        assert set(replacement) <= {"name", "newName", "newTag", "digest"}, replacement
        for obj in objects:
            for container in containers(obj):
                if image_name(container["image"]) == replacement["name"]:
                    name = replacement.get("newName", replacement["name"])
                    if "digest" in replacement:
                        container["image"] = f"{name}@{replacement['digest']}"
                    else:
                        tag = replacement.get("newTag", container["image"][len(replacement["name"]) + 1 :] or "latest")
                        container["image"] = f"{name}:{tag}"

    for count in kustomization.get("replicas", []):
        matched = [obj for obj in objects if obj["kind"] == "Deployment" and obj["metadata"]["name"] == count["name"]]
        assert matched, f"replicas: no Deployment {count['name']}"
        for obj in matched:
            obj["spec"]["replicas"] = count["count"]

    # Name references to a generated ConfigMap follow its new name.
    for obj in objects:
        for spec in pod_specs(obj):
            for volume in spec.get("volumes", []):
                if "configMap" in volume:
                    volume["configMap"]["name"] = renamed.get(volume["configMap"]["name"], volume["configMap"]["name"])
            for container in containers(obj):
                assert "envFrom" not in container, "envFrom references are not imitated here"
                for variable in container.get("env", []):
                    assert "configMapKeyRef" not in variable.get("valueFrom", {}), "not imitated here"
    return copy.deepcopy(objects)


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def option(args: list[str], flag: str) -> str | None:
    """The value of ``flag`` in an argument list (``--flag=value`` or ``--flag value``), the last one."""
    value = None
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
        elif arg == flag and i + 1 < len(args):
            value = args[i + 1]
    return value


# -- the Dockerfile the manifests run ---------------------------------------------------------------


def dockerfile() -> dict[str, Any]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    instructions = [(op.upper(), rest.strip()) for op, _, rest in (line.partition(" ") for line in lines)]
    copies = {}
    for op, rest in instructions:
        if op == "COPY":
            *sources, target = rest.split()
            for source in sources:
                copies[source] = target + Path(source).name if target.endswith("/") else target
    uid = next(m.group(1) for op, rest in instructions if op == "RUN" and (m := re.search(r"--uid (\d+)", rest)))
    return {
        "entrypoint": json.loads(next(rest for op, rest in instructions if op == "ENTRYPOINT")),
        "workdir": [rest for op, rest in instructions if op == "WORKDIR"][-1],
        "user": [rest for op, rest in instructions if op == "USER"][-1],
        "uid": int(uid),
        "copies": copies,
    }


def test_the_manifests_match_the_dockerfile() -> None:
    image = dockerfile()
    assert image["entrypoint"][0] == "locust"
    assert image["uid"] == IMAGE_UID and image["user"] != "root"
    assert image["workdir"] == WORKDIR
    # The image's own locustfile, which the operator example overrides with --locustfile.
    assert image["entrypoint"][1:] == ["-f", "/app/locustfile.py"]
    assert image["copies"]["locustfile.py"] == "/app/locustfile.py"


# -- strict schema validation ----------------------------------------------------------------------


def validate(obj: dict[str, Any]) -> None:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = "/".join(str(part) for part in error.absolute_path)
        pytest.fail(f"{obj['kind']} {obj['metadata'].get('name')}: {where}: {error.message}")


def test_kubernetes_validate_has_the_pinned_version() -> None:
    import kubernetes_validate.utils

    versions = kubernetes_validate.utils.all_versions()
    assert any(v.startswith(K8S_VERSION.rsplit(".", 1)[0] + ".") for v in versions), versions


def test_kubernetes_validate_is_strict() -> None:
    """The check itself: a field Kubernetes does not know fails, as a misspelt one would."""
    import kubernetes_validate

    service = one(build(BASE), "Service", "regload-master")
    wrong = copy.deepcopy(service)
    wrong["spec"]["ports"][0]["targetport"] = "web"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, K8S_VERSION, strict=True)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda d: d.relative_to(DEPLOY).as_posix())
def test_every_built_object_is_valid(directory: Path) -> None:
    objects = build(directory)
    assert {obj["kind"] for obj in objects} >= {"Deployment", "Service", "ConfigMap"}
    for obj in objects:
        validate(obj)


def test_every_manifest_file_is_used_and_valid() -> None:
    """No stray file: each YAML file under deploy/kubernetes is a kustomization, a resource or a
    patch of one, or one of the examples applied as they are; every resource file validates as it
    is written (the patches are partial objects: they are validated merged, above)."""
    kustomizations, resources, patches = set(), set(), set()
    for directory in KUSTOMIZATIONS:
        kustomizations.add(directory / "kustomization.yaml")
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
        resources |= {directory / entry for entry in kustomization.get("resources", [])}
        patches |= {directory / patch["path"] for patch in kustomization.get("patches", [])}
    as_is = {OPERATOR / "locusttest.yaml", OPERATOR / "configmap.yaml", DEPLOY / "prometheus" / "servicemonitor.yaml"}
    known = {path.resolve() for path in kustomizations | resources | patches | as_is}
    assert {path.resolve() for path in DEPLOY.rglob("*.yaml")} - known == set()
    for path in resources:
        if path.is_file():
            for obj in load_documents(path):
                validate(obj)


# -- references between the objects ----------------------------------------------------------------


def master_and_workers(objects: list[dict[str, Any]]) -> tuple[dict, dict, dict]:
    return (
        one(objects, "Deployment", "regload-master"),
        one(objects, "Deployment", "regload-worker"),
        one(objects, "Service", "regload-master"),
    )


def locust_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def locust_args(container: dict[str, Any]) -> list[str]:
    """What locust is given: the args, after the image's entry point unless the container has its
    own command (a shell wrapper passes its args on as "$@")."""
    entrypoint = dockerfile()["entrypoint"]
    if "command" not in container:
        return entrypoint[1:] + container.get("args", [])
    if container["command"] == ["locust"]:
        return container.get("args", [])
    assert container["command"][:2] == ["/bin/sh", "-c"] and 'locust "$@"' in container["command"][2]
    return container.get("args", [])


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda d: d.relative_to(DEPLOY).as_posix())
def test_the_service_reaches_the_master_and_its_ports(directory: Path) -> None:
    objects = build(directory)
    master, worker, service = master_and_workers(objects)
    for deployment in (master, worker):
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), "a Deployment's selector must match its pods"
        assert LABELS.items() <= labels.items()
    assert master["spec"]["replicas"] == 1 and master["spec"]["strategy"]["type"] == "Recreate"
    selector = service["spec"]["selector"]
    assert selector.items() <= master["spec"]["template"]["metadata"]["labels"].items()
    assert not selector.items() <= worker["spec"]["template"]["metadata"]["labels"].items()

    container = locust_container(master)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"web": WEB_PORT, "master": MASTER_PORT, "metrics": METRICS_PORT}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports, f"Service port {port['name']}: no such container port"
        assert port["port"] == ports[port["targetPort"]] and port["name"] == port["targetPort"]
    assert {port["name"] for port in service["spec"]["ports"]} == {"web", "master", "metrics"}
    assert container["readinessProbe"]["tcpSocket"]["port"] in ports

    # Prometheus: the annotations and the flag name the same port.
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == METRICS_PORT
    assert option(locust_args(container), "--metrics-port") == str(METRICS_PORT)

    # The workers find the master through the Service.
    worker_args = locust_args(locust_container(worker))
    assert "--worker" in worker_args and "--master" in locust_args(container)
    assert option(worker_args, "--master-host") == service["metadata"]["name"]
    assert int(option(worker_args, "--master-port") or MASTER_PORT) == MASTER_PORT


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda d: d.relative_to(DEPLOY).as_posix())
def test_the_pods_run_the_image_and_the_locustfile_of_the_config_map(directory: Path) -> None:
    objects = build(directory)
    config_maps = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "ConfigMap"}
    master, worker, _ = master_and_workers(objects)
    images = {c["image"] for obj in objects for c in containers(obj)}
    assert len(images) == 1, images
    assert image_name(images.pop()).rsplit("/", 1)[-1] == IMAGE_NAME
    for deployment in (master, worker):
        spec = deployment["spec"]["template"]["spec"]
        container = locust_container(deployment)
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        locustfile = option(locust_args(container), "--locustfile") or option(locust_args(container), "-f")
        assert locustfile is not None
        mount = next(m for m in container["volumeMounts"] if locustfile.startswith(m["mountPath"] + "/"))
        config_map = volumes[mount["name"]]["configMap"]["name"]
        assert config_map in config_maps, f"no ConfigMap {config_map}"
        key = locustfile[len(mount["mountPath"]) + 1 :]
        assert key in config_maps[config_map]["data"]
        assert config_maps[config_map]["data"][key] == (BASE / "locustfile.py").read_text()


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda d: d.relative_to(DEPLOY).as_posix())
def test_the_pods_run_as_the_image_user_on_a_read_only_root(directory: Path) -> None:
    master, worker, _ = master_and_workers(build(directory))
    for deployment in (master, worker):
        spec = deployment["spec"]["template"]["spec"]
        # No REGLOAD_MASTER_PORT=tcp://… beside the variables regload and Locust read.
        assert spec["enableServiceLinks"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == IMAGE_UID
        container = locust_container(deployment)
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"]["cpu"] == "1"  # one Locust process, one core
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        writable = [
            m["mountPath"]
            for m in container["volumeMounts"]
            if "emptyDir" in volumes[m["name"]] and not m.get("readOnly")
        ]
        assert WORKDIR in writable and "/tmp" in writable
        # Every report path lands on a writable volume.
        args = locust_args(container)
        for flag in ("--csv", "--html", "--json-file"):
            path = option(args, flag)
            if path is not None:
                absolute = os.path.normpath(os.path.join(WORKDIR, path))
                assert any(absolute.startswith(place + "/") for place in writable), f"{flag} {path}"


def test_the_overlays_set_the_registry_image_and_workers() -> None:
    base_master, base_worker, _ = master_and_workers(build(BASE))
    assert locust_container(base_master)["image"] == f"{IMAGE_NAME}:latest"
    objects = build(EXAMPLE)
    master, worker, service = master_and_workers(objects)
    assert {obj["metadata"].get("namespace") for obj in objects if obj["kind"] != "Namespace"} == {"regload"}
    assert one(objects, "Namespace", "regload")
    assert locust_container(worker)["image"] == "registry.example.com/tools/regload:0.1.0"
    assert worker["spec"]["replicas"] == 4
    env = {variable["name"]: variable for variable in locust_container(master)["env"]}
    assert env["LOCUST_HOST"]["value"] == "https://registry.example.com"
    assert env["REGLOAD_PASSWORD"]["valueFrom"]["secretKeyRef"]["optional"] is True  # merged, not replaced


def test_the_headless_overlay_waits_for_every_worker() -> None:
    master, worker, _ = master_and_workers(build(HEADLESS))
    args = locust_args(locust_container(master))
    assert "--headless" in args
    assert int(option(args, "--expect-workers") or 0) == worker["spec"]["replicas"]
    assert option(args, "--run-time")


# -- the command lines, as Locust and regload read them --------------------------------------------

PARSE = r"""
import contextlib, io, json, os, sys

import regload.locust.plugin  # noqa: F401  (adds regload's options to Locust's parser)
from locust.argument_parser import get_parser
from regload.locust.options import settings_from

parser = get_parser(default_config_files=[])
known = sorted(s for action in parser._actions for s in action.option_strings)
env_vars = sorted(action.env_var for action in parser._actions if getattr(action, "env_var", None))
results = []
for case in json.load(sys.stdin):
    for name in [name for name in os.environ if name.startswith(("LOCUST_", "REGLOAD_"))]:
        del os.environ[name]
    os.environ.update(case["env"])
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            options = get_parser(default_config_files=[]).parse_args(case["args"])
        settings_from(options)
    except (SystemExit, Exception) as error:
        results.append({"error": errors.getvalue().strip() or repr(error)})
        continue
    results.append({
        key: getattr(options, key, None)
        for key in ("host", "master", "worker", "master_host", "master_port", "expect_workers", "locustfile",
                    "headless", "autostart", "metrics_port", "num_users", "run_time")
    })
print(json.dumps({"known": known, "env_vars": env_vars, "results": results}))
"""


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's variables, a Secret's value stood in for."""
    return {v["name"]: v.get("value", "from-a-secret") for v in container.get("env", [])}


def operator_command_lines() -> list[tuple[str, list[str], dict[str, str]]]:
    """The locust command lines the Locust operator makes from the example: the image's entry
    point, then the command seed, the operator's own flags, the extraArgs (its
    internal/resources/command.go)."""
    test = load_documents(OPERATOR / "locusttest.yaml")[0]
    spec, name = test["spec"], test["metadata"]["name"]
    entrypoint = dockerfile()["entrypoint"][1:]
    env = {v["name"]: v.get("value", "from-a-secret") for v in spec.get("env", {}).get("variables", [])}
    autoquit = spec["master"].get("autoquit", {"enabled": True, "timeout": 60})
    master = [
        *entrypoint,
        *spec["master"]["command"].split(),
        "--master",
        f"--master-port={MASTER_PORT}",
        f"--expect-workers={spec['worker']['replicas']}",
        *(["--autostart"] if spec["master"].get("autostart", True) else []),
        *(["--autoquit", str(autoquit.get("timeout", 60))] if autoquit["enabled"] else []),
        "--enable-rebalancing",
        "--only-summary",
        *spec["master"].get("extraArgs", []),
    ]
    worker = [
        *entrypoint,
        *spec["worker"]["command"].split(),
        "--worker",
        f"--master-port={MASTER_PORT}",
        f"--master-host={name}-master",
        *spec["worker"].get("extraArgs", []),
    ]
    return [("locust-operator master", master, env), ("locust-operator worker", worker, env)]


def command_lines() -> list[tuple[str, list[str], dict[str, str]]]:
    lines = []
    for directory in KUSTOMIZATIONS:
        master, worker, _ = master_and_workers(build(directory))
        for role, deployment in (("master", master), ("worker", worker)):
            container = locust_container(deployment)
            lines.append((f"{directory.relative_to(DEPLOY)} {role}", locust_args(container), container_env(container)))
    return lines + operator_command_lines()


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    lines = command_lines()
    result = subprocess.run(
        [sys.executable, "-c", PARSE],
        input=json.dumps([{"args": args, "env": env} for _, args, env in lines]),
        cwd=tmp_path_factory.mktemp("parse"),  # no locust.conf nor pyproject.toml read
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    out["lines"] = {label: (args, env, res) for (label, args, env), res in zip(lines, out["results"], strict=True)}
    return out


def test_every_option_given_exists(parsed: dict[str, Any]) -> None:
    """Each flag the manifests pass is Locust's or one of regload's option groups'."""
    from regload.options.groups import GROUPS
    from regload.options.spec import LOCUST

    regload_flags = {o.flag for group in GROUPS for o in group.options if LOCUST in o.fronts}
    regload_env = {o.env for group in GROUPS for o in group.options if o.env}
    unknown = []
    for label, (args, env, _) in parsed["lines"].items():
        for arg in args:
            if arg.startswith("-"):
                flag = arg.split("=", 1)[0]
                if flag not in regload_flags and flag not in parsed["known"]:
                    unknown.append(f"{label}: {flag}")
        for name in env:
            if name not in regload_env and name not in parsed["env_vars"]:
                unknown.append(f"{label}: environment variable {name}")
    assert unknown == [], "neither Locust's nor regload's"
    assert "--metrics-port" in regload_flags


def test_locust_and_regload_accept_the_command_lines(parsed: dict[str, Any]) -> None:
    failed = {label: res["error"] for label, (_, _, res) in parsed["lines"].items() if "error" in res}
    assert failed == {}
    for label, (_, _, res) in parsed["lines"].items():
        if label.endswith("master"):
            assert res["master"] and not res["worker"], label
            assert res["host"] and res["host"].startswith(("http://", "https://")), label
            assert res["metrics_port"] is not None, label
        else:
            assert res["worker"] and not res["master"], label
            assert res["master_host"].endswith("-master"), label
        assert res["master_port"] == MASTER_PORT


def test_the_headless_run_and_the_operator_run_end_by_themselves(parsed: dict[str, Any]) -> None:
    headless = parsed["lines"]["overlays/headless master"][2]
    assert headless["headless"] and headless["run_time"] and headless["expect_workers"] == 4
    operator = parsed["lines"]["locust-operator master"][2]
    assert operator["autostart"] and operator["run_time"] and operator["locustfile"] == "/lotest/src/locustfile.py"
    for label in ("overlays/example master", "base master"):
        assert not parsed["lines"][label][2]["headless"], "the web UI's"


# -- the headless master's shell -------------------------------------------------------------------

FAKE_LOCUST = """#!/bin/sh
echo "fake locust: $*" >&2
trap 'echo report > results/report.html; exit 3' TERM
i=0; while [ $i -lt "$FAKE_SECONDS" ]; do sleep 0.2 & wait $!; i=$((i+1)); done
echo report > results/report.html
exit "$FAKE_STATUS"
"""


def headless_script() -> list[str]:
    master, _, _ = master_and_workers(build(HEADLESS))
    return locust_container(master)["command"]


def test_the_headless_shell_parses() -> None:
    command = headless_script()
    assert command[:2] == ["/bin/sh", "-c"]
    subprocess.run(["sh", "-n", "-c", command[2]], check=True, timeout=10)


@pytest.mark.parametrize("stop_during_run", [False, True], ids=["run-ends", "pod-deleted-during-run"])
def test_the_headless_shell_keeps_the_results_and_locust_status(tmp_path: Path, stop_during_run: bool) -> None:
    """locust gets the args; its status and reports stay while the container idles, and SIGTERM
    (the pod deleted) reaches locust during the run and ends the idle container after it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "locust").write_text(FAKE_LOCUST)
    (bin_dir / "locust").chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_SECONDS": "100" if stop_during_run else "2",
        "FAKE_STATUS": "1",
    }
    command = headless_script()
    process = subprocess.Popen(
        [*command, "--headless", "--run-time=1m"], cwd=home, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        if stop_during_run:
            time.sleep(1)
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while not (home / "results" / "exit-code").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert process.poll() is None, "the container must stay up with its results"
        status = (home / "results" / "exit-code").read_text().strip()
        assert status == ("3" if stop_during_run else "1")
        assert (home / "results" / "report.html").read_text() == "report\n"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == int(status)
        stderr = process.stderr.read() if process.stderr else ""
        assert "fake locust: --headless --run-time=1m" in stderr
        assert f"regload: locust exited with {status}" in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- the Prometheus Operator's ServiceMonitor ------------------------------------------------------


def test_the_service_monitor_scrapes_the_metrics_port() -> None:
    (monitor,) = load_documents(DEPLOY / "prometheus" / "servicemonitor.yaml")
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    _, _, service = master_and_workers(build(EXAMPLE))
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    names = {port["name"] for port in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
        assert endpoint["port"] in names and endpoint["path"] == "/metrics"
    assert any(endpoint["port"] == "metrics" for endpoint in monitor["spec"]["endpoints"])
    # Its metadata is ordinary object metadata.
    validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": monitor["metadata"]})


# -- the Locust operator's LocustTest --------------------------------------------------------------

#: locust.io/v2 LocustTest, from the operator's CRD (config/crd/bases/locust.io_locusttests.yaml):
#: each object's fields, and the required ones.
LOCUSTTEST_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "": ({"apiVersion", "kind", "metadata", "spec"}, {"apiVersion", "kind", "metadata", "spec"}),
    "spec": (
        {
            "image",
            "imagePullPolicy",
            "imagePullSecrets",
            "master",
            "worker",
            "testFiles",
            "scheduling",
            "security",
            "env",
            "volumes",
            "volumeMounts",
            "observability",
        },
        {"image", "master", "worker"},
    ),
    "spec.master": (
        {"command", "autostart", "autoquit", "extraArgs", "labels", "annotations", "resources"},
        {"command"},
    ),
    "spec.master.autoquit": ({"enabled", "timeout"}, {"enabled"}),
    "spec.worker": (
        {"command", "replicas", "extraArgs", "labels", "annotations", "resources"},
        {"command", "replicas"},
    ),
    "spec.testFiles": ({"configMapRef", "libConfigMapRef", "srcMountPath", "libMountPath"}, set()),
    "spec.security": ({"podSecurityContext", "containerSecurityContext"}, set()),
    "spec.env": ({"configMapRefs", "secretRefs", "secretMounts", "variables"}, set()),
    "spec.scheduling": ({"affinity", "nodeSelector", "runtimeClassName", "tolerations"}, set()),
}
SRC_MOUNT_PATH = "/lotest/src"  # the operator's default testFiles.srcMountPath
OPERATOR_EXPORTER_PORT = 9646  # the operator's metrics exporter sidecar in the master pod


def test_the_locust_test_has_the_fields_of_its_crd() -> None:
    (test,) = load_documents(OPERATOR / "locusttest.yaml")
    assert (test["apiVersion"], test["kind"]) == ("locust.io/v2", "LocustTest")

    def walk(obj: dict[str, Any], path: str) -> None:
        allowed, required = LOCUSTTEST_FIELDS[path]
        assert set(obj) <= allowed, f"{path or 'LocustTest'}: unknown fields {sorted(set(obj) - allowed)}"
        assert required <= set(obj), f"{path or 'LocustTest'}: missing {sorted(required - set(obj))}"
        for key, value in obj.items():
            child = f"{path}.{key}" if path else key
            if child in LOCUSTTEST_FIELDS:
                walk(value, child)

    walk(test, "")
    spec = test["spec"]
    for role in ("master", "worker"):
        assert isinstance(spec[role]["command"], str)
        assert all(isinstance(arg, str) for arg in spec[role].get("extraArgs", []))
    assert isinstance(spec["master"]["autostart"], bool) and isinstance(spec["master"]["autoquit"]["enabled"], bool)
    assert isinstance(spec["worker"]["replicas"], int) and 1 <= spec["worker"]["replicas"] <= 500
    assert spec.get("imagePullPolicy", "IfNotPresent") in {"Always", "IfNotPresent", "Never"}
    assert image_name(spec["image"]).rsplit("/", 1)[-1] == IMAGE_NAME
    for mount in spec.get("volumeMounts", []):
        assert mount.get("target", "both") in {"master", "worker", "both"}
    # Its metadata (a name the operator makes Jobs and a Service of) is ordinary object metadata.
    validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": test["metadata"]})


def test_the_core_parts_of_the_locust_test_are_valid() -> None:
    """What the operator copies into its pods (resources, security contexts, volumes, mounts,
    variables, annotations), validated strictly inside a Pod as it would build one."""
    (test,) = load_documents(OPERATOR / "locusttest.yaml")
    spec = test["spec"]
    security = spec.get("security", {})
    for role in ("master", "worker"):
        mounts = [
            {k: v for k, v in mount.items() if k != "target"}
            for mount in spec.get("volumeMounts", [])
            if mount.get("target", "both") in {role, "both"}
        ]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{test['metadata']['name']}-{role}",
                "annotations": spec[role].get("annotations", {}),
            },
            "spec": {
                "securityContext": security.get("podSecurityContext", {}),
                "volumes": [
                    *spec.get("volumes", []),
                    {"name": "testfiles", "configMap": {"name": spec["testFiles"]["configMapRef"]}},
                ],
                "containers": [
                    {
                        "name": "locust",
                        "image": spec["image"],
                        "imagePullPolicy": spec.get("imagePullPolicy", "IfNotPresent"),
                        "args": [*spec[role]["command"].split(), *spec[role].get("extraArgs", [])],
                        "env": spec.get("env", {}).get("variables", []),
                        "resources": spec[role].get("resources", {}),
                        "securityContext": security.get("containerSecurityContext", {}),
                        "volumeMounts": [*mounts, {"name": "testfiles", "mountPath": SRC_MOUNT_PATH}],
                    }
                ],
            },
        }
        validate(pod)
    assert security["podSecurityContext"]["runAsUser"] == IMAGE_UID
    assert security["podSecurityContext"]["runAsNonRoot"] is True
    if security["containerSecurityContext"].get("readOnlyRootFilesystem"):
        assert {m["mountPath"] for m in spec["volumeMounts"]} >= {WORKDIR, "/tmp"}


def test_the_locust_test_runs_the_locustfile_of_its_config_map() -> None:
    (test,) = load_documents(OPERATOR / "locusttest.yaml")
    (config_map,) = load_documents(OPERATOR / "configmap.yaml")
    validate(config_map)
    spec = test["spec"]
    assert config_map["metadata"]["name"] == spec["testFiles"]["configMapRef"]
    assert config_map["data"]["locustfile.py"] == (BASE / "locustfile.py").read_text(), "keep the copy equal"
    src = spec["testFiles"].get("srcMountPath", SRC_MOUNT_PATH)
    for role in ("master", "worker"):
        args = shlex.split(spec[role]["command"])
        assert option(args, "--locustfile") == f"{src}/locustfile.py"
    # regload's metrics beside the operator's exporter, and the pod's scrape annotations on them.
    port = int(option(spec["master"]["extraArgs"], "--metrics-port") or 0)
    assert port and port != OPERATOR_EXPORTER_PORT
    assert spec["master"]["annotations"]["prometheus.io/port"] == str(port)
    # Not the base's names: both can run in one namespace.
    assert f"{test['metadata']['name']}-master" != "regload-master"


# -- the locustfile the ConfigMaps hold ------------------------------------------------------------


def test_the_config_map_locustfile_names_classes_regload_has() -> None:
    import ast

    import regload.locust

    tree = ast.parse((BASE / "locustfile.py").read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "regload.locust"
        for alias in node.names
    }
    assert {"PullUser", "PushUser", "StormUser"} <= imported
    assert imported <= set(regload.locust.__all__)


# -- packaging ---------------------------------------------------------------------------------------


def test_the_test_extras_install_kubernetes_validate() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    assert any(re.match(r"kubernetes-validate\s*>=", requirement) for requirement in extras)
