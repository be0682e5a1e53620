"""Test bed helpers: PKI, htpasswd, a token server, OCI image builders and skopeo wrappers."""
