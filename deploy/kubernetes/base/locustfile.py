"""regload's locustfile on Kubernetes, in a ConfigMap: the user classes both roles run.

The kustomize base builds the ConfigMap ``regload-locustfile`` from this file
(``configMapGenerator``) and the pods run ``locust -f /config/locustfile.py``; its name changes
with its content, so ``kubectl apply -k`` rolls the pods onto an edited file. The Locust operator
example (../locust-operator/configmap.yaml) holds a copy, mounted at /lotest/src. Edit it to
choose or configure the user classes; the classes come from the regload package in the image.

As the repository's locustfile.py: ``PullUser`` and ``PushUser`` always, ``TraceUser`` when
``--trace`` is given, ``StormUser`` when it is named, a ``--storm-`` option given, or on a worker
(whose master names the classes).
"""

import sys

from regload.locust import PullUser, PushUser

__all__ = ["PullUser", "PushUser"]

if any(arg == "--trace" or arg.startswith("--trace=") for arg in sys.argv):
    from regload.locust import TraceUser

    __all__ += ["TraceUser"]

if any(arg in ("StormUser", "--worker") or arg.startswith("--storm-") for arg in sys.argv):
    from regload.locust import StormUser

    __all__ += ["StormUser"]
