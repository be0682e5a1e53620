"""Locust's web form as a browser fills and posts it, read from the page the web UI serves.

Locust (2.x) renders its page with ``window.templateArgs``, whose ``extra_options`` holds each
custom parameter's default, choices and kind; its React form (``locust/webui``) makes a field per
parameter, named in camelCase, and on Start posts every field, names back in snake_case:

- a select shows its default when that is one of its choices, else its first choice, and posts
  what it shows (``<select>`` semantics; the form passes ``defaultValue || choices[0]``);
- a checkbox posts ``true`` or ``false``;
- a text field posts its default as text (empty for none), a secret field is blank (regload
  blanks the password in the page).

``untouched_form(page)`` is that post for a form nobody touched, so that a test can submit the
form as a browser would without one, and a browser test can check the two agree.
"""

from __future__ import annotations

import json
import re
from typing import Any

_TEMPLATE_ARGS = re.compile(r"window\.templateArgs\s*=\s*(\{.*?\})\s*(?:;|\n|</script>)", re.S)


def template_args(page: str) -> dict[str, Any]:
    found = _TEMPLATE_ARGS.search(page)
    assert found, "no window.templateArgs in the page"
    args: dict[str, Any] = json.loads(found.group(1))
    return args


def field_name(dest: str) -> str:
    """The form field's name for an option's dest, as the web UI makes it (snake to camel)."""
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), dest)


def posted_name(field: str) -> str:
    """The name a field is posted under (camel back to snake, as the web UI does)."""
    if field[0] == field[0].upper():
        return field
    return re.sub(r"([a-z0-9])([A-Z0-9])", r"\1_\2", field).lower()


def shown_value(option: dict[str, Any]) -> str:
    """What the field of one custom parameter holds when the page loads, as posted."""
    default, choices = option["default_value"], option.get("choices")
    if choices:
        return str(default) if default in choices else str(choices[0])
    if isinstance(default, bool):
        return "true" if default else "false"
    if option.get("is_secret") or default is None:
        return ""
    if isinstance(default, float) and default.is_integer():
        return str(int(default))  # JavaScript's String(1.0) is "1"
    return str(default)


def untouched_form(page: str) -> dict[str, str]:
    """The custom parameters a browser posts when Start is clicked on an untouched form."""
    options = template_args(page)["extra_options"]
    return {posted_name(field_name(dest)): shown_value(option) for dest, option in options.items()}
