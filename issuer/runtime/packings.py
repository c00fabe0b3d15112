"""What the issuer's largest caches pack their objects against (``shared.kube.packing``).

Each is a typical object of the kind as its cache keeps it (the same fields,
in the same order), with the words and keys most objects repeat: deflate
then stores little more than what is unique to each object (names, uids,
timestamps). An object unlike them is packed as exactly, only less tightly.

Packed: the caches whose objects are read one at a time (the authority
controller's pass reads each issued Secret once a second: about 5 µs each).
Not the Pkis: that pass reads all of them at once, every second, which would
decode them all anew each time (their memory, and 17 to 24 µs of CPU each here).
"""

from __future__ import annotations

from issuer.runtime.issued_facts import PackedIssuedSecrets
from shared.kube.packing import DeflatedJSON

_ID = "00000000-0000-0000-0000-000000000000"
PODS = DeflatedJSON(
    {
        "spec": {
            "volumes": [{"name": "tls", "secret": {"secretName": "web-tls"}}],
            "containers": [
                {"name": "app", "env": [{"valueFrom": {"secretKeyRef": {"name": "web-tls"}}}]},
                {"name": "app", "envFrom": [{"secretRef": {"name": "web-tls"}}]},
            ],
        },
        "metadata": {"name": "web", "namespace": "default", "uid": _ID, "resourceVersion": "1"},
    }
)
"""The Pod watch's objects: a Pod cut down to its name, uid and Secret references
(``consumers.reading_pod``), in the order the cache keeps their fields."""

ISSUED_SECRETS = PackedIssuedSecrets(
    {
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": "web-tls",
            "namespace": "default",
            "uid": _ID,
            "resourceVersion": "1000000",
            "labels": {"app.kubernetes.io/managed-by": "pkiwarden", "pkiwarden.dev/pki": "web"},
        },
        "data": {},
    }
)
"""pkiwarden's Secrets, in the form ``issued_facts.keep_facts`` gives them."""
