"""The PkiAuthority controller: each CA as a resource, its trust distribution and rotation.

``inputs`` (the authority's spec, the CA Secret that records where a
rotation stands), ``decisions`` (pure, table-tested: the phases, the trust
set, the re-issue order, the status), ``effects`` (trust ConfigMaps, the
first CA), ``reporting`` (the CA's gauges); ``controller.py`` ties them to the
caches the runtime hands it.
"""
