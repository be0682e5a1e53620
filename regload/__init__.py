"""regload: docker pull and push as plain Registry HTTP API V2 requests, for load testing registries."""

__version__ = "0.1.0"
