"""An option, declared once for every front end that has it: its long name, the command line's
short and old spellings, its default, its help, whether Locust's web form shows it.

Values are kept as given (text, as a command line or the web form gives them) and checked when
a group's value is built (``groups``), so that the command line and Locust accept and refuse the
same things with the same words.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any, Literal

CLI = "cli"
LOCUST = "locust"
BOTH = frozenset({CLI, LOCUST})
CLI_ONLY = frozenset({CLI})
LOCUST_ONLY = frozenset({LOCUST})

_BASE_ACTIONS: dict[str, type[argparse.Action]] = {
    "value": argparse._StoreAction,
    "flag": argparse._StoreTrueAction,
    "append": argparse._AppendAction,
}


@dataclass(frozen=True)
class Option:
    flag: str  # the long name, the same in every front end: --registry-username
    help: str
    default: Any = None  # as given on a command line ("8MiB"); None: not given
    kind: Literal["value", "flag", "append"] = "value"
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    short: tuple[str, ...] = ()  # the command line's short spellings: -u
    deprecated: tuple[str, ...] = ()  # the command line's old spellings: accepted with a warning, for one release
    fronts: frozenset[str] = BOTH
    env: str | None = None  # an environment variable Locust's parser reads
    secret: bool = False  # never shown in the web UI's page
    web: bool = False  # a field of Locust's web form: what a user changes between runs
    dest_name: str = ""  # when the flag's own does not survive the web form's renaming (registry_http_2)

    @property
    def dest(self) -> str:
        return self.dest_name or self.flag.lstrip("-").replace("-", "_")

    def spellings(self, front: str) -> tuple[str, ...]:
        """Every spelling ``front`` accepts, the long name after the short ones, old ones last."""
        if front == CLI:
            return (*self.short, self.flag, *self.deprecated)
        return (self.flag,)

    def add_to(self, parser: Any, front: str) -> None:
        """Add to an argparse parser or group (``CLI``) or to Locust's parser (``LOCUST``)."""
        kwargs: dict[str, Any] = {"dest": self.dest, "help": self.help, "action": self._action(front)}
        if self.kind == "append":
            kwargs["default"] = list(self.default or ())
        elif self.kind == "flag":
            kwargs["default"] = bool(self.default)
        else:
            kwargs["default"] = self.default
            if self.choices:
                kwargs["choices"] = self.choices
        if self.metavar and self.kind != "flag":
            kwargs["metavar"] = self.metavar
        if front == LOCUST:
            # Locust's own add_argument (not an argument group's) knows these.
            kwargs.update(include_in_web_ui=self.web, is_secret=self.secret)
            if self.env:
                kwargs["env_var"] = self.env
        parser.add_argument(*self.spellings(front), **kwargs)

    def _action(self, front: str) -> type[argparse.Action]:
        base = _BASE_ACTIONS[self.kind]
        old = self.deprecated if front == CLI else ()
        if not old:
            return base
        option = self

        class Deprecated(base):  # type: ignore[valid-type,misc]
            def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
                if option_string in old:
                    print(
                        f"regload: warning: {option_string} is deprecated and will go in the next release:"
                        f" use {option.flag}",
                        file=sys.stderr,
                    )
                super().__call__(parser, namespace, values, option_string)

        return Deprecated

    def given(self, namespace: Any) -> Any:
        """The value in parsed options (an argparse namespace, Locust's options, or anything with
        the attribute), or the default when it is missing or None."""
        value = getattr(namespace, self.dest, None) if namespace is not None else None
        return self.default if value is None else value


@dataclass(frozen=True)
class Group:
    """Options that belong together (the registry connection, pulls, the pull pool…)."""

    title: str
    options: tuple[Option, ...]

    def of(self, front: str) -> tuple[Option, ...]:
        return tuple(o for o in self.options if front in o.fronts)

    def add_to(self, parser: Any, front: str) -> None:
        """Add this group's options for ``front``: as an argparse group on the command line, to
        Locust's parser directly (its groups do not carry the web-UI settings)."""
        options = self.of(front)
        if not options:
            return
        target = parser.add_argument_group(self.title) if front == CLI else parser
        for option in options:
            option.add_to(target, front)

    def __getitem__(self, flag: str) -> Option:
        for option in self.options:
            if option.flag == flag:
                return option
        raise KeyError(flag)
