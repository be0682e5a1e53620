"""Push sources: what an image to push is made of (``docker save`` tarball, OCI layout, synthetic)."""

from .open import open_source

__all__ = ["open_source"]
