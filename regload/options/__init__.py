"""regload's options, declared once (``groups``) for the command line and the Locust harness:
each concept has one long name in both, one default, one check, one help text; the reference
page of the docs is written from them (``reference``)."""
