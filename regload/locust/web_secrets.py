"""Secret options in Locust's web UI (``--registry-password``): never served, still used.

Locust (2.x, ``argument_parser.ui_extra_args_dict``) renders every custom option's value into
the page as its form field's default; ``is_secret`` only makes the field a password input, so the
password sits in the page's source. Here the value of each secret option is blanked just before
the page is rendered. The form then posts the field back empty, and Locust copies it into the
options: an empty field puts back the value given at start (command line, ``REGLOAD_PASSWORD``,
config file) before the run starts, so the users, and every worker (the master sends its options
with each spawn message), still have it. A password typed into the field replaces it.
"""

from __future__ import annotations

from typing import Any

#: The ``dest`` of regload's secret options (``is_secret=True`` in ``options.add_arguments``; a
#: unit test keeps the two lists equal).
SECRET_OPTIONS = ("registry_password",)


def protect_secrets(web_ui: Any, options: Any) -> None:
    """Keep the secret options of ``options`` (Locust's parsed options) out of ``web_ui``'s pages."""
    from flask import before_render_template, request

    kept = {name: getattr(options, name, "") or "" for name in SECRET_OPTIONS}

    def blank_secret_defaults(sender: Any, template: Any, context: dict[str, Any], **_: Any) -> None:
        template_args = context.get("template_args")
        extra_options = template_args.get("extra_options") if isinstance(template_args, dict) else None
        for name, option in (extra_options or {}).items():
            if isinstance(option, dict) and name in kept:
                option["default_value"] = ""

    before_render_template.connect(blank_secret_defaults, web_ui.app, weak=False)

    @web_ui.app.after_request
    def restore_blank_secrets(response: Any) -> Any:
        # Runs when /swarm has copied the form into the options and spawned the run's greenlet,
        # before that greenlet runs. regload's users read settings parsed at test start, in that
        # greenlet, so none reads the blank value. (swarm() may switch greenlets while it stops a
        # previous run; the users of that run keep the settings they parsed.)
        if request.method == "POST" and request.path.endswith("/swarm"):
            for name in kept:
                posted = request.form.get(name)
                if posted:
                    kept[name] = posted
                elif posted is not None:
                    setattr(options, name, kept[name])
        return response
