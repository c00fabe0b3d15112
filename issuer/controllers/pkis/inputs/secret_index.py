"""Which Pkis of a namespace ask for which Secret name, kept current from the Pki watch.

Validation checks that no other Pki of the namespace writes to the same
Secret. Handing it every Pki of the namespace made each reconcile O(n), and a
burst of n new Pkis O(n²) in pure Python: with 1,000 Pkis in one namespace
that scan cost more CPU than issuing the certificate. The index answers "who
else names this Secret?" in O(1); validation still makes the comparison.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from shared.defaults import secret_name


class SecretNameIndex:
    """(namespace, Secret name) -> names of the Pkis whose defaulted spec.secretName it is.

    Written by the Pki cache's thread, read by the workers.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secret_of: dict[tuple[str, str], str] = {}  # (namespace, Pki) -> Secret
        # (namespace, Secret) -> Pkis: a tuple, as it is nearly always one Pki (a set
        # of one took 0.2 KB per Pki).
        self._pkis_of: dict[tuple[str, str], tuple[str, ...]] = {}

    def update(self, namespace: str, name: str, pki: Mapping[str, Any] | None) -> None:
        """Index ``pki`` (the current object of namespace/name), or drop it when None."""
        wanted = secret_name(pki) if pki is not None else None
        with self._lock:
            old = self._secret_of.get((namespace, name))
            if old == wanted:
                return
            if old is not None:
                others = tuple(n for n in self._pkis_of.get((namespace, old), ()) if n != name)
                if others:
                    self._pkis_of[(namespace, old)] = others
                else:
                    self._pkis_of.pop((namespace, old), None)
                del self._secret_of[(namespace, name)]
            if wanted is not None:
                self._secret_of[(namespace, name)] = wanted
                self._pkis_of[(namespace, wanted)] = (
                    *self._pkis_of.get((namespace, wanted), ()),
                    name,
                )

    def pkis_naming(self, namespace: str, secret: str) -> list[str]:
        """The Pkis of ``namespace`` that write to ``secret`` (the asking Pki included)."""
        with self._lock:
            return sorted(self._pkis_of.get((namespace, secret), ()))
