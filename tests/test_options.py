"""Options declared once (``regload.options``): the command line and Locust know a shared option
by the same long name, check it the same way, and the command line still takes its old spellings,
with a warning."""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import Any

import pytest

from regload.cli.main import build_parser, main
from regload.errors import UsageError
from regload.locust.options import add_arguments, settings_from
from regload.options.groups import GROUPS
from regload.options.spec import BOTH, LOCUST
from tests.support.web_form import field_name, posted_name

pytestmark = pytest.mark.unit


class LocustParser:
    """What Locust's parser is given: every spelling and keyword, in order."""

    def __init__(self) -> None:
        self.added: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    def add_argument(self, *flags: str, **kwargs: Any) -> None:
        self.added.append((flags, kwargs))


def locust_flags() -> set[str]:
    parser = LocustParser()
    add_arguments(parser)
    return {flag for flags, _ in parser.added for flag in flags}


def cli_flags() -> set[str]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {s for sub in subparsers.choices.values() for a in sub._actions for s in a.option_strings}


def test_a_shared_option_has_one_long_name_in_both_front_ends():
    shared = [o for group in GROUPS for o in group.options if o.fronts == BOTH]
    assert len(shared) >= 15
    missing_cli = [o.flag for o in shared if o.flag not in cli_flags()]
    missing_locust = [o.flag for o in shared if o.flag not in locust_flags()]
    assert missing_cli == missing_locust == []
    # The connection options are --registry-… in both; the old command-line spellings are not Locust's.
    assert {"--registry-ca-cert", "--registry-insecure", "--registry-http2", "--registry-timeout"} <= locust_flags()
    assert not {"--ca-cert", "--insecure", "--http2", "--timeout", "--jobs", "-u"} & locust_flags()


def test_old_command_line_spellings_still_work_with_a_warning(capsys):
    args = build_parser().parse_args(
        ["pull", "r:1", "--jobs", "2", "--ca-cert", "ca.pem", "--http2", "--username", "u", "--platform", "linux/arm64"]
    )
    assert (args.pull_jobs, args.registry_ca_cert, args.registry_http_2) == ("2", "ca.pem", True)
    assert (args.registry_username, args.pull_platform) == ("u", "linux/arm64")
    err = capsys.readouterr().err
    for old, new in [("--jobs", "--pull-jobs"), ("--ca-cert", "--registry-ca-cert"), ("--http2", "--registry-http2")]:
        assert f"regload: warning: {old} is deprecated and will go in the next release: use {new}" in err
    assert err.count("deprecated") == 5
    # The new spellings, and the short ones, say nothing.
    build_parser().parse_args(["push", "s", "r:1", "-j", "2", "--push-jobs", "3", "-u", "u", "--registry-insecure"])
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--pull-jobs", "65", "--pull-jobs must be between 1 and 64, not 65"),
        ("--pull-jobs", "many", "invalid --pull-jobs 'many': expected a whole number"),
        ("--registry-timeout", "0", "--registry-timeout must be a number of seconds above 0, not 0"),
        ("--pull-platform", "linux", "invalid --pull-platform 'linux'"),
        ("--user-agent", "a\r\nb", "--user-agent must be one non-empty line"),
        ("--retries", "1000", "--retries must be between 0 and 100, not 1000"),
    ],
)
def test_a_shared_option_is_checked_the_same_way_in_both(capsys, flag, value, message):
    assert main(["pull", "127.0.0.1:9/app:1", flag, value]) == 2
    assert message in capsys.readouterr().err
    dest = flag.lstrip("-").replace("-", "_").replace("http2", "http_2")
    with pytest.raises(UsageError, match=message.replace("|", r"\|").split(" '")[0]) as caught:
        settings_from(SimpleNamespace(**{dest: value}))
    assert message in str(caught.value)


def test_every_web_form_field_is_posted_back_under_its_option_s_dest():
    """The web form names a field in camelCase and posts it back in snake_case: a dest that does
    not survive the trip (registry_http2 would come back as registry_http_2) is ignored by Locust."""
    parser = LocustParser()
    add_arguments(parser)
    web = [kwargs["dest"] for _, kwargs in parser.added if kwargs.get("include_in_web_ui")]
    assert web and all(posted_name(field_name(dest)) == dest for dest in web)
    assert [o.dest for group in GROUPS for o in group.of(LOCUST) if o.web] == web  # in the groups' order
    assert web[:2] == ["registry_username", "registry_password"]  # host and auth first


def test_options_once_only_on_the_command_line_now_reach_locust_users_too():
    """--registry-timeout and --registry-header were the command line's alone; --pull-head-first
    was Locust's alone."""
    s = settings_from(SimpleNamespace(registry_timeout="5", registry_header=["X-Fleet: 7"], client_profile="podman"))
    assert s.client.read_timeout == 5.0 and ("X-Fleet", "7") in s.client.headers
    assert any(name == "Docker-Distribution-API-Version" for name, _ in s.client.headers)  # podman's own stays
    from regload.options.groups import chosen_profile, pull_options

    args = build_parser().parse_args(["pull", "r:1", "--pull-head-first", "-j", "2"])
    options = pull_options(args, chosen_profile(args))
    assert options.head_first and options.jobs == 2
