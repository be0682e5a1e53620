"""Imports point down: protocol core < transports < wiring < workload < front ends (the layer
table of docs/architecture.md).

Every module of ``regload`` belongs to one layer, named here by inclusion: a new module must be
placed in a layer before this test passes. Relative imports (``from .. import x``) are resolved
like absolute ones.
"""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parent.parent / "regload"

# The protocol core: no I/O library, no front end.
CORE = {
    "audit",
    "auth",
    "blobstore",
    "client",
    "compression",
    "concurrency",
    "digest",
    "endpoints",
    "errors",
    "fds",
    "flows",
    "http",
    "manifest",
    "mediatypes",
    "profiles",
    "reference",
    "retry",
    "schema1",
    "sinks",
    "sources",
    "streams",
    "units",
    "ustar",
    "verify",
}
# What each layer may import from regload, besides itself.
ALLOWED = {
    "core": set(CORE),
    "transports": set(CORE),
    "local_registry": set(CORE),  # a process launcher on the standard library
    "wiring": CORE | {"transports"},
    # What describes or schedules load without Locust: it may use gevent, never locust.
    "workload": CORE | {"transports", "wiring"},
    # Every option, declared once for both front ends.
    "options": CORE | {"transports", "wiring", "workload"},
    # Two runs' result files compared (``regload compare``): reads JSON, and Locust's percentile rule.
    "compare": CORE | {"workload"},
    "cli": CORE | {"transports", "wiring", "workload", "options", "compare"},
    "locust": CORE | {"transports", "wiring", "local_registry", "workload", "options"},
    "__main__": {"cli"},
    # The public surface (``regload.__all__``): names of the core and of the wiring, imported when
    # asked for (``__init__`` imports them by name: tests/test_public_api.py checks where from).
    "__init__": CORE | {"transports", "wiring"},
}
IO_LIBRARIES = {"gevent", "geventhttpclient", "httptools", "httpx", "locust", "requests", "urllib3", "socket", "ssl"}


def _layer(path: Path) -> str:
    top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    return "core" if top in CORE else top


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(top-level regload components, outside top-level modules) that ``path`` imports."""
    rel = path.relative_to(PACKAGE)
    package_parts = ["regload", *rel.parts[:-1]]  # the package the module sits in
    internal, external = set(), set()

    def add(module: str) -> None:
        parts = module.split(".")
        if parts[0] == "regload":
            if len(parts) > 1:
                internal.add(parts[1])
        else:
            external.add(parts[0])

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                add(node.module or "")
                continue
            base = package_parts[: len(package_parts) - (node.level - 1)]
            if node.module:
                add(".".join([*base, node.module]))
            else:  # from .. import a, b: a name is a module of that package, or one of its names
                for alias in node.names:
                    folder = PACKAGE.parent.joinpath(*base)
                    is_module = (folder / f"{alias.name}.py").exists() or (folder / alias.name).is_dir()
                    add(".".join([*base, alias.name]) if is_module else ".".join(base))
    return internal, external


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    unknown = {str(p.relative_to(PACKAGE)) for p in _modules() if _layer(p) not in ALLOWED}
    assert unknown == set(), "place these modules in a layer of tests/test_layering.py"


def test_imports_point_down():
    wrong = {}
    for path in _modules():
        layer = _layer(path)
        internal, _ = _imports(path)
        own = {path.relative_to(PACKAGE).parts[0].removesuffix(".py")} if layer != "core" else set()
        bad = internal - ALLOWED[layer] - own
        if bad:
            wrong[str(path.relative_to(PACKAGE))] = sorted(bad)
    assert wrong == {}


def test_core_imports_no_io_library():
    core = [p for p in _modules() if _layer(p) == "core"]
    assert len(core) > 30
    offenders = {str(p.relative_to(PACKAGE)): sorted(_imports(p)[1] & IO_LIBRARIES) for p in core}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_workload_never_imports_locust():
    workload = [p for p in _modules() if _layer(p) == "workload"]
    assert len(workload) > 10
    offenders = {str(p.relative_to(PACKAGE)) for p in workload if "locust" in _imports(p)[1]}
    assert offenders == set()


def test_relative_imports_are_resolved(tmp_path):
    """The check itself: ``from .. import cli`` inside a core package is seen as ``cli``."""
    module = PACKAGE / "sinks" / "_layering_probe.py"
    module.write_text("from .. import cli\nfrom ..locust import users\nfrom . import base\n")
    try:
        internal, _ = _imports(module)
    finally:
        module.unlink()
    assert internal == {"cli", "locust", "sinks"}


# What a module of the Locust front end may bind at module level: constants, loggers, patterns,
# read-only mappings, type aliases.
_IMMUTABLE_CALLS = {"getLogger", "compile", "frozenset", "tuple", "TypeVar", "MappingProxyType"}


def _immutable(node: ast.AST) -> bool:
    if isinstance(node, (ast.Constant, ast.JoinedStr, ast.Name, ast.Attribute, ast.Subscript)):
        return True
    if isinstance(node, ast.Dict):  # only as MappingProxyType's argument (see the Call case)
        return all(
            k is not None and _immutable(k) and _immutable(v) for k, v in zip(node.keys, node.values, strict=True)
        )
    if isinstance(node, ast.Tuple):
        return all(_immutable(e) for e in node.elts)
    if isinstance(node, ast.BinOp):
        return _immutable(node.left) and _immutable(node.right)
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name in _IMMUTABLE_CALLS and all(_immutable(a) for a in node.args)
    return False


def _binds_mutable(value: ast.AST) -> bool:
    return isinstance(value, ast.Dict) or not _immutable(value)


def test_the_locust_front_end_keeps_no_mutable_state_at_module_level():
    """A run's state lives in its ``LoadRun`` (one per Locust environment), never in a module: no
    module-level dict, list, set or object, and no ``global`` statement."""
    offenders = []
    for path in sorted((PACKAGE / "locust").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            if value is not None and _binds_mutable(value):
                offenders.append(f"{path.name}:{node.lineno}")
        offenders += [f"{path.name}:{n.lineno} global" for n in ast.walk(tree) if isinstance(n, ast.Global)]
    assert offenders == []
