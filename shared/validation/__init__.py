"""Validation by kind: one module per API kind over one common module.

``pki`` (Pki), ``pki_policy`` (PkiPolicy) and ``pki_authority`` (PkiAuthority)
each hold the pure rules of their kind; ``common`` holds what they share
(finding builders, field readers, ordering, phrasing for callers). The
webhook, the issuer and ``pkiwarden lint`` import the module of the kind
they check, so each reads the same words wherever a problem surfaces.
"""
