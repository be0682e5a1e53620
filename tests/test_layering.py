"""The protocol core must not import an I/O library: transports and front ends do."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "regload"
FORBIDDEN = {"gevent", "geventhttpclient", "httpx", "locust", "requests", "urllib3", "socket", "ssl"}
FRONT_ENDS = {"transports", "cli", "locust"}
# Beside the core, not part of it: the docker-registry launcher and `python -m regload`.
TOOLS = {"local_registry.py", "__main__.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_imports_no_io_library():
    core_files = [p for p in CORE.rglob("*.py") if p.relative_to(CORE).parts[0] not in FRONT_ENDS | TOOLS]
    assert len(core_files) > 10
    offenders = {str(p.relative_to(CORE)): sorted(_imports(p) & FORBIDDEN) for p in core_files}
    assert {k: v for k, v in offenders.items() if v} == {}


def _internal_imports(path: Path) -> set[str]:
    """First component of every regload-internal module imported (relative or absolute)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if node.level == 0 and parts[0] == "regload" and len(parts) > 1:
                names.add(parts[1])
            elif node.level > 0:
                names.add(parts[0])
    return names


def test_core_does_not_import_front_ends():
    for path in CORE.rglob("*.py"):
        rel = path.relative_to(CORE)
        if rel.parts[0] in FRONT_ENDS | TOOLS:
            continue
        assert not _internal_imports(path) & FRONT_ENDS, f"{rel} imports a front end"
