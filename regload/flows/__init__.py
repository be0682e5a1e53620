"""The whole-image flows of the protocol core: a pull (manifest, config, layers) and a push
(blobs, then the manifest), each request through a ``RegistryClient``."""
