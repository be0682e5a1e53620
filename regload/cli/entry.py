"""Console-script entry point. gevent must patch the standard library before anything else
imports it, so that the httpx transport's sockets cooperate with concurrent layer transfers."""

from gevent import monkey

monkey.patch_all()

from .main import main  # noqa: E402

__all__ = ["main"]
