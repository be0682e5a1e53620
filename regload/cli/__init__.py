"""The ``regload`` command line: a thin front end over the protocol core."""
