"""The console script loads a network stack only for a command that sends requests: ``--version``,
``--help`` and usage errors answer without gevent's patching or an HTTP library."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

NETWORK = ["gevent", "geventhttpclient", "httptools", "httpx", "ssl"]
CHILD = """
import json, sys
from regload.cli.entry import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
loaded = [m for m in {network} if m in sys.modules]
patched = "gevent.monkey" in sys.modules and sys.modules["gevent.monkey"].is_module_patched("socket")
print(json.dumps({{"code": code, "loaded": loaded, "patched": patched}}), file=sys.stderr)
"""


def run(*args: str) -> dict:
    script = CHILD.format(network=NETWORK)
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60)
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["pull", "--help"], ["pull"], ["frobnicate"]])
def test_answers_without_a_network_stack(args):
    out = run(*args)
    assert out["loaded"] == [] and not out["patched"], out
    assert out["code"] in (0, 2)


def test_only_the_httpx_transport_is_patched_for():
    """The default transport is written on gevent's own sockets: a command that sends requests
    runs unpatched (patching costs 70-110 ms of start-up); ``--http2`` (httpx on the standard
    library's sockets) patches before anything is sent."""
    out = run("tags", "127.0.0.1:1/nothing/here")  # connection refused: a clean failure
    assert out["code"] == 1 and "gevent" in out["loaded"] and not out["patched"], out
    out = run("tags", "--registry-http2", "127.0.0.1:1/nothing/here")
    assert out["code"] == 1 and out["patched"], out


def test_version_answers_before_the_commands_are_imported(capsys):
    """``--version`` alone prints what the parser's own version action prints, with none of the
    command modules (pull, push, the sinks and sources: ~70 ms of imports) loaded."""
    script = (
        "import sys; from regload.cli.entry import main; code = main(['--version']);"
        "print(code, 'regload.cli.main' in sys.modules, 'regload.flows.pull' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stderr.split() == ["0", "False", "False"], done.stderr
    from regload.cli.main import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--version"])
    assert done.stdout == capsys.readouterr().out
