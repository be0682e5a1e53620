"""What the front ends (the CLI, the Locust layer) share beside the protocol core: the client
factory (transport + auth + client from settings), the retry options, and the gevent runner.
Above the core and the transports, below the front ends."""
