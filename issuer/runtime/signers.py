"""The signing CAs by authority, each from a kubernetes.io/tls Secret in the issuer's namespace.

A CA that cannot sign (missing, not a CA, key not matching, expired) is not an
exception but a :class:`CAProblem` whose message tells the administrator what
to fix; the application owner sees it as ``CAUnavailable``. The key is parsed
here and never leaves this process: messages name the Secret, never its data.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from cryptography import x509

from issuer.runtime import issuance
from issuer.runtime.ca_history import absent_ca_message, ca_history, lost_ca_message
from issuer.runtime.caches import CASecrets
from shared.clock import rfc3339
from shared.kube.cache import WatchCache
from shared.schema import DEFAULT_AUTHORITY


@dataclass(frozen=True, slots=True)
class CAProblem:
    """Why the CA cannot sign, for the administrator; never contains key material."""

    message: str


def load_ca(
    secret: Mapping[str, Any] | None, namespace: str, name: str, now: datetime
) -> issuance.SigningCA | CAProblem:
    """The CA in ``secret`` if it can sign now, else what is wrong with it."""
    where = f'CA Secret "{namespace}/{name}"'
    if secret is None:
        return CAProblem(lost_ca_message(namespace, name))
    data = secret.get("data") or {}
    try:
        cert_pem = issuance.secret_field(data, "tls.crt")
        key_pem = issuance.secret_field(data, "tls.key")
    except ValueError as error:
        return CAProblem(f"{where}: {error}")
    try:
        certificates = issuance.load_certificates(cert_pem)
    except ValueError:
        return CAProblem(f"{where} has no readable PEM certificate in tls.crt")
    try:
        key = issuance.load_key(key_pem)
    except (ValueError, TypeError):
        return CAProblem(f"{where} has no readable unencrypted PEM private key in tls.key")
    signer = certificates[0]
    subject = signer.subject.rfc4514_string() or "(empty subject)"
    if not issuance.is_ca_certificate(signer):
        return CAProblem(
            f"{where}: certificate {subject!r} is not a CA (BasicConstraints CA:false)"
        )
    if not issuance.key_matches_certificate(key, signer):
        return CAProblem(
            f"{where}: tls.key does not belong to the certificate {subject!r} in tls.crt"
        )
    if now >= signer.not_valid_after_utc:
        return CAProblem(
            f"{where}: certificate {subject!r} expired at"
            f" {rfc3339(signer.not_valid_after_utc)}; a cluster administrator must"
            " renew the CA"
        )
    if now < signer.not_valid_before_utc:
        return CAProblem(
            f"{where}: certificate {subject!r} is not valid before"
            f" {rfc3339(signer.not_valid_before_utc)}"
        )
    chain = tuple(c for c in certificates[1:] if not issuance.is_self_signed(c))
    root = _root(data, certificates)
    return issuance.SigningCA(
        certificate=signer, key=key, chain=chain, root=root, trust=_trust(data, root)
    )


def _trust(data: Mapping[str, Any], root: x509.Certificate) -> bytes:
    """The CA Secret's ca.crt, which the authority keeps as the whole trust set."""
    try:
        bundle = issuance.secret_field(data, "ca.crt")
        issuance.load_certificates(bundle)
    except ValueError:
        return issuance.certificate_to_pem(root)
    return bundle


def _root(data: Mapping[str, Any], certificates: list[x509.Certificate]) -> x509.Certificate:
    """The trust anchor for ca.crt: the Secret's ca.crt, else the top of tls.crt."""
    try:
        return issuance.load_certificates(issuance.secret_field(data, "ca.crt"))[-1]
    except ValueError:
        return certificates[-1]


class CASource:
    """The CA from its watch cache, parsed once per version of its Secret.

    A parsed CA is re-checked for expiry at every call, so the cached value
    never signs past the CA's notAfter.
    """

    def __init__(self, cache: WatchCache, namespace: str, name: str) -> None:
        self.cache = cache
        self._namespace = namespace
        self.name = name
        self._memo: tuple[str, issuance.SigningCA | CAProblem] | None = None
        self._lock = threading.Lock()

    def exists(self) -> bool:
        return self.cache.get(self._namespace, self.name) is not None

    def current(self, now: datetime) -> issuance.SigningCA | CAProblem:
        secret = self.cache.get(self._namespace, self.name)
        version = str(((secret or {}).get("metadata") or {}).get("resourceVersion", ""))
        with self._lock:
            memo = self._memo
        if memo is not None and memo[0] == version:
            loaded = memo[1]
            if isinstance(loaded, CAProblem) or now < loaded.certificate.not_valid_after_utc:
                return loaded
        loaded = load_ca(secret, self._namespace, self.name, now)
        with self._lock:
            self._memo = (version, loaded)
        return loaded


# The issuer's Role in its own namespace: it grants the CA Secrets by name (deploy/rbac).
CA_SECRETS_ROLE = "pkiwarden-issuer"


class SecretGrant(Enum):
    """The issuer Role's two rules by Secret name: (verbs, the Helm chart's value)."""

    CA = ("get, list, watch and update", "issuer.caSecretNames")
    NEXT_CA = ("get", "issuer.nextCASecretNames")


def ungranted_secret(namespace: str, name: str, grant: SecretGrant) -> str:
    """What to do when the issuer may not read a Secret: the exact grant that is missing.

    Least privilege: the issuer's Role names each CA Secret it may use, so an
    authority (or a next CA) added later needs its Secret added there, by a
    cluster administrator.
    """
    verbs, value = grant.value
    return (
        f'Secret "{namespace}/{name}" may not be read by the issuer: Role "{CA_SECRETS_ROLE}"'
        f' in namespace "{namespace}" grants {verbs} on Secrets by name, and "{name}" is not'
        f' among its resourceNames. A cluster administrator must add "{name}" there: with the'
        f" Helm chart, to the value {value}; with deploy/, to that rule in rbac/issuer.yaml"
    )


def unreadable_ca_problem(namespace: str, name: str) -> str:
    """A CA Secret the issuer may not read: nothing is signed until it is granted."""
    return f"CA {ungranted_secret(namespace, name, SecretGrant.CA)}"


class Signers:
    """Every authority's signing CA, for the controllers that sign.

    The authority the issuer was started with (``--authority``, ``default``)
    signs with ``--ca-secret`` whether or not its PkiAuthority exists, as a
    single-CA issuer always has; any other authority with the Secret its
    PkiAuthority names in ``spec.secretName``. The API's default authority
    name (``default``: a Pki's spec.authority, a policy's allowedAuthorities)
    stands for the issuer's own authority, which is the same one unless the
    issuer was started with another ``--authority``.
    """

    def __init__(
        self, authorities: WatchCache, secrets: CASecrets, default: str, default_secret: str
    ) -> None:
        self._authorities = authorities
        self._secrets = secrets
        self.default = default
        self._default_secret = default_secret
        self._sources: dict[str, CASource] = {}
        self._lock = threading.Lock()

    def resolve(self, authority: str) -> str:
        """The authority a name in the API stands for: ``default`` is the issuer's own."""
        return self.default if authority == DEFAULT_AUTHORITY else authority

    def authority_of(self, pki: Mapping[str, Any]) -> str:
        """The authority that signs ``pki``: its spec.authority, else the default one."""
        named = (pki.get("spec") or {}).get("authority")
        return self.resolve(named if isinstance(named, str) and named else DEFAULT_AUTHORITY)

    def secret_name(self, authority: str) -> str | None:
        """The CA Secret of ``authority``; None: no such PkiAuthority (or it names none)."""
        if authority == self.default:
            return self._default_secret
        found = self._authorities.get("", authority)
        name = ((found or {}).get("spec") or {}).get("secretName")
        return name if isinstance(name, str) and name else None

    def exists(self, authority: str) -> bool:
        return authority == self.default or self._authorities.get("", authority) is not None

    def names(self) -> list[str]:
        """Every authority there is: the PkiAuthorities, and the default one."""
        found = {str((a.get("metadata") or {}).get("name")) for a in self._authorities.list()}
        return sorted(found | {self.default})

    def current(self, authority: str, now: datetime) -> issuance.SigningCA | CAProblem:
        """The CA that signs for ``authority`` now, or what is wrong with it."""
        name = self.secret_name(authority)
        if name is None:
            return CAProblem(
                f'PkiAuthority "{authority}" does not exist; a cluster administrator must'
                " create it, or the Pki must name another authority in spec.authority"
            )
        with self._lock:
            source = self._sources.get(authority)
            if source is None or source.name != name:
                source = CASource(self._secrets.cache(name), self._secrets.namespace, name)
                self._sources[authority] = source
        if self._secrets.denied(name):
            return CAProblem(unreadable_ca_problem(self._secrets.namespace, name))
        if not source.exists():
            # A fresh install's CA not made yet is not a lost one: the authority's record says.
            history = ca_history(self._authorities.get("", authority))
            return CAProblem(absent_ca_message(history, authority, self._secrets.namespace, name))
        return source.current(now)
