"""``regload.fds``: descriptors closed at once under gevent's monkey patching, and tree removal
within any descriptor limit. The end-to-end proof on real-world trees is test_real_trees.py."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]

#: Runs in a child: the CLI's patching, the hub running (gevent then defers every close of a
#: directory to its next loop iteration), and a limit far below the directories handled.
PATCHED_CHILD = """
from gevent import monkey
monkey.patch_all()
import gevent, os, posix, resource, sys
gevent.sleep(0)  # the hub exists and has run: os.close now defers non-regular files
assert os.close is not posix.close, "gevent no longer patches os.close: this test proves nothing"
resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}))
"""


def run_patched(code: str, limit: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = PATCHED_CHILD.format(limit=limit) + textwrap.dedent(code)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def test_remove_tree_under_gevent_holds_a_few_descriptors_whatever_the_tree(tmp_path: Path) -> None:
    """3,000 sibling directories and a chain 400 deep, removed with 32 descriptors allowed."""
    tree = tmp_path / "tree"
    for i in range(3000):
        (tree / "wide" / f"d{i}").mkdir(parents=True)
    deep = tree / "deep"
    fd = os.open(tmp_path, os.O_RDONLY)
    try:  # relative to a descriptor: the path is longer than PATH_MAX allows in one string
        os.mkdir("tree/deep", dir_fd=fd)
        current = os.open("tree/deep", os.O_RDONLY, dir_fd=fd)
        for _ in range(400):
            os.mkdir("a" * 50, dir_fd=current)
            nxt = os.open("a" * 50, os.O_RDONLY, dir_fd=current)
            os.close(current)
            current = nxt
        with open(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=current), "w") as f:
            f.write("x")
        os.close(current)
    finally:
        os.close(fd)
    assert deep.is_dir()
    done = run_patched("from regload.fds import remove_tree\nremove_tree('tree')\n", limit=32, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not tree.exists()


def test_shutil_rmtree_under_gevent_is_what_fails(tmp_path: Path) -> None:
    """The control: the standard library's fd-based rmtree closes through the patched os.close
    and runs out of descriptors on the same kind of tree (why regload.fds exists)."""
    for i in range(300):
        (tmp_path / "tree" / f"d{i}").mkdir(parents=True)
    done = run_patched("import shutil\nshutil.rmtree('tree')\n", limit=32, cwd=tmp_path)
    assert done.returncode != 0 and "Too many open files" in done.stderr, done.stderr


def test_extraction_under_gevent_closes_every_directory(tmp_path: Path) -> None:
    """A layer of 4,000 directories (each with a file) extracted with 32 descriptors allowed."""
    code = """
    import io
    from regload.sinks.extract import Extractor
    from tests.support.images import layer_tar
    tar = layer_tar({f"usr/share/doc/pkg{i}/copyright": b"c" for i in range(4000)})
    os.mkdir("rootfs")
    extractor = Extractor("rootfs")
    extractor.apply_layer(io.BytesIO(tar), "test")
    extractor.finish()
    extractor.close()
    print(len(os.listdir("rootfs/usr/share/doc")))
    """
    done = run_patched(code, limit=32, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4000"]


def test_extraction_of_a_deep_tree_needs_a_few_dozen_descriptors(tmp_path: Path) -> None:
    """A path 300 directories deep, with a file at every level, and a whiteout of its top from a
    second layer: 64 descriptors allowed, the interpreter's own included."""
    code = """
    import io
    from regload.sinks.extract import Extractor
    from tests.support.images import WHITEOUT, layer_tar
    deep = "/".join(f"d{i}" for i in range(300))
    levels = {"/".join(deep.split("/")[:n]) + "/f": b"x" for n in range(1, 301)}
    layers = [layer_tar({**levels, "keep/f": b"k"}), layer_tar({"d0": WHITEOUT})]
    for name, count in (("one", 1), ("two", 2)):
        os.mkdir(name)
        extractor = Extractor(name)
        for layer in layers[:count]:
            extractor.apply_layer(io.BytesIO(layer), "test")
        extractor.finish()
        extractor.close()
    print(sum(len(files) for _, _, files in os.walk("one")))
    print(sorted(os.listdir("two")))
    """
    done = run_patched(code, limit=64, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["301", "['keep']"]


def test_remove_tree_unlocks_directories_a_layer_made_read_only(tmp_path: Path) -> None:
    """Where permission bits apply (a user, or root without CAP_DAC_OVERRIDE, as in some
    containers): 0500 and 0000 directories are made removable on the way."""
    tree = tmp_path / "tree"
    (tree / "ro" / "sub").mkdir(parents=True)
    (tree / "ro" / "sub" / "f").write_text("1")
    (tree / "ro" / "sub").chmod(0o000)
    (tree / "ro").chmod(0o500)
    cmd = [sys.executable, "-c", "import sys; from regload.fds import remove_tree; remove_tree(sys.argv[1])", str(tree)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to drop root's permission override"
        cmd = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert not tree.exists()


def test_remove_tree_of_nothing_is_fine(tmp_path: Path) -> None:
    from regload.fds import remove_tree

    remove_tree(tmp_path / "missing")
    remove_tree(tmp_path / "missing-parent" / "child")


@pytest.mark.parametrize("call", ["os.close", "shutil.rmtree", "os.fwalk"])
def test_no_module_closes_directories_through_the_patched_os_close(call: str) -> None:
    """Only regload.fds closes descriptors; everything else goes through it."""
    module, attr = call.split(".")
    offenders = []
    for path in (REPO / "regload").rglob("*.py"):
        if path.name == "fds.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == attr:
                if isinstance(node.value, ast.Name) and node.value.id == module:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []
