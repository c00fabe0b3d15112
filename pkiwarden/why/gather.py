"""The I/O edge of ``why``: read what a namespace ``view``/``edit`` role may read, no more.

Every read that is refused becomes an :class:`~pkiwarden.why.facts.Unchecked`
naming the permission, and ``why`` goes on with what it has: a user without
the PkiPolicy reader still gets the Pki's status and Events. A Secret written
by a Pki is read whole, as ``get secrets`` allows, and only its metadata and
the certificate's public part (``tls.crt``) are kept: the rest, the private
key among it, is dropped in the function that read it, never stored, logged or
printed. Any other Secret is read as metadata only (``PartialObjectMetadata``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

import urllib3

from issuer.controllers.authorities.effects.configmaps import TRUST_CONFIGMAP
from pkiwarden.why.facts import (
    Facts,
    SecretFacts,
    TrustFacts,
    Unchecked,
    certificate_facts,
    event_facts,
    name_of,
    pki_facts,
    secret_info,
    trust_facts,
    was_issued,
    writer_of,
    writers,
)
from pkiwarden.why.secret_uses import Use, secret_uses
from pkiwarden.why.targets import Kind, Target, pod_spec
from shared.defaults import secret_name
from shared.kube.client import (
    EVENTS,
    JSON,
    METADATA_ONLY_OBJECT,
    NAMESPACES,
    PKI_AUTHORITIES,
    PKI_POLICIES,
    PKIS,
    PODS,
    SECRETS,
    ApiError,
    Kube,
    Resource,
)
from shared.validation.pki import SecretInfo

T = TypeVar("T")
_UNREADABLE: JSON | None = {}
"""Stands for a Secret that could not be read (distinct from None, absent), by identity."""

CERTIFICATE_KEY = "tls.crt"
CONFIG_MAPS = Resource("v1", "configmaps")
POLICY_READER = "the pkiwarden policy-reader component grants it to every signed-in user"
PKI_NOT_FOUND_HINT = (
    "; if kubectl apply refused it, the refusal names the fix,"
    " and `pkiwarden lint FILE` shows it again without a cluster"
)
PKI_ROLE = "the pkiwarden-view role, part of view, edit and admin, grants it"


class UnreadableTargetError(Exception):
    """The target itself could not be read; the message says why and which permission."""


class _DeniedError(Exception):
    def __init__(self, needs: str) -> None:
        super().__init__(needs)
        self.needs = needs


def _resource_name(resource: Resource) -> str:
    group = resource.group_version.rpartition("/")[0]
    return f"{resource.plural}.{group}" if group else resource.plural


def _needs(verb: str, resource: Resource, namespace: str | None) -> str:
    where = f" in namespace {namespace}" if resource.namespaced and namespace else ""
    return f"{verb} {_resource_name(resource)}{where}"


class Reader:
    """Reads for one ``why`` run; a refused read raises ``_DeniedError`` with the permission."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    def _call(
        self, verb: str, resource: Resource, namespace: str | None, path: str, **kw: Any
    ) -> JSON:
        try:
            return self._kube.get(path, **kw)
        except ApiError as error:
            if error.status == 401:
                raise UnreadableTargetError(
                    "the API server did not accept these credentials (401 Unauthorized);"
                    " log in again or check the kubeconfig's user"
                ) from None
            if error.status == 403:
                raise _DeniedError(_needs(verb, resource, namespace)) from None
            if error.not_found and verb == "list":
                raise UnreadableTargetError(
                    f"the API server does not serve {_resource_name(resource)};"
                    " is pkiwarden installed on this cluster?"
                ) from None
            raise

    def get(
        self, resource: Resource, namespace: str | None, name: str, *, metadata_only: bool = False
    ) -> JSON | None:
        """The object, or None if it does not exist."""
        accept = METADATA_ONLY_OBJECT if metadata_only else "application/json"
        try:
            return self._call(
                "get", resource, namespace, resource.path(namespace, name), accept=accept
            )
        except ApiError as error:
            if error.not_found:
                return None
            raise

    def list(
        self, resource: Resource, namespace: str | None, params: Mapping[str, str] | None = None
    ) -> list[JSON]:
        page = self._call("list", resource, namespace, resource.path(namespace), params=params)
        return [item for item in page.get("items") or [] if isinstance(item, dict)]


def _read_target(reader: Reader, target: Target) -> JSON:
    metadata_only = target.kind is Kind.SECRET
    try:
        obj = reader.get(
            target.resource, target.namespace, target.name, metadata_only=metadata_only
        )
    except _DeniedError as denied:
        raise UnreadableTargetError(
            f"{target} in namespace {target.namespace} cannot be read: forbidden;"
            f" it needs {denied.needs}"
        ) from None
    if obj is None:
        hint = PKI_NOT_FOUND_HINT if target.kind is Kind.PKI else ""
        raise UnreadableTargetError(f"{target} not found in namespace {target.namespace}{hint}")
    return obj


def read_certificate(reader: Reader, namespace: str, name: str) -> tuple[JSON | None, bytes | None]:
    """A Secret's metadata and its ``tls.crt`` (PEM), or (None, None) if it does not exist.

    The whole Secret lives only in this frame: what leaves it is metadata and
    the public certificate, so no key can reach the facts, the output or a log.
    """
    secret = reader.get(SECRETS, namespace, name)
    if secret is None:
        return None, None
    metadata: JSON = {"metadata": secret.get("metadata") or {}}
    encoded = (secret.get("data") or {}).get(CERTIFICATE_KEY)
    del secret
    try:
        return metadata, base64.b64decode(str(encoded), validate=True) if encoded else None
    except (binascii.Error, ValueError):
        return metadata, None


def gather(kube: Kube, target: Target, now: dt.datetime | None = None) -> Facts:
    """Everything ``why`` shows for ``target``; UnreadableTargetError if it cannot be read."""
    try:
        return _gather(Reader(kube), target, now or dt.datetime.now(dt.UTC))
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise UnreadableTargetError(
            f"cannot reach the API server at {kube.host}: {error}"
        ) from None
    except ApiError as error:
        raise UnreadableTargetError(f"the API server answered {error}") from None


class _Attempts:
    """Runs reads that may be refused; a refusal is noted with the permission and a default."""

    def __init__(self) -> None:
        self.unchecked: list[Unchecked] = []

    def __call__(self, what: str, read: Callable[[], T], default: T, hint: str = "") -> T:
        try:
            return read()
        except _DeniedError as denied:
            needs = f"{denied.needs} ({hint})" if hint else denied.needs
            self.unchecked.append(Unchecked(what, needs))
            return default


def about(uid: str) -> dict[str, str]:
    """List parameters for the Events of one object, found by uid as kubectl describe does."""
    return {"fieldSelector": f"involvedObject.uid={uid}"}


def _gather(reader: Reader, target: Target, now: dt.datetime) -> Facts:
    namespace = target.namespace
    attempt = _Attempts()
    obj = _read_target(reader, target)
    listed: list[JSON] | None = attempt(
        f"the Pkis of namespace {namespace}", lambda: reader.list(PKIS, namespace), None, PKI_ROLE
    )
    pkis = listed or []
    if target.kind is Kind.PKI:
        pkis = [p for p in pkis if name_of(p) != target.name] + [obj]
    written = writers(pkis)

    uses: Mapping[str, tuple[Use, ...]]
    if target.runs_pods:
        uses = secret_uses(pod_spec(target.kind, obj))
    elif target.kind is Kind.PKI:
        uses = {secret_name(obj) or "": ()}
    else:
        uses = {target.name: ()}

    secrets: list[SecretFacts] = []
    infos: dict[str, SecretInfo] | None = {}
    leaves: dict[str, bytes | None] = {}  # Secret written by a Pki -> its tls.crt
    for name, ways in uses.items():
        claimant = written.get(name)
        chain_check = f"whether the certificate in Secret {name} chains to the trust bundle"
        found: JSON | None = obj
        if target.kind is not Kind.SECRET:
            found = attempt(
                f"Secret {name}",
                partial(reader.get, SECRETS, namespace, name, metadata_only=True),
                _UNREADABLE,
            )
        if found is _UNREADABLE:
            if claimant:  # the same permission leaves its certificate unchecked too
                attempt.unchecked.append(Unchecked(chain_check, attempt.unchecked[-1].needs))
            infos = None  # validation must not take an unread Secret for an absent one
            secrets.append(SecretFacts(name, ways, written_by=claimant))
            continue
        info = secret_info(found) if found is not None else None
        writer = writer_of(info, claimant)
        if writer is not None and info is not None:
            # Only a Secret its Pki writes is read beyond its metadata (tls.crt, public).
            read = attempt(chain_check, partial(read_certificate, reader, namespace, name), None)
            if read is not None and read[0] is not None:
                leaves[name] = read[1]
        if info is not None and infos is not None:
            infos[name] = info
        secrets.append(
            SecretFacts(
                name,
                ways,
                exists=info is not None,
                managed=info.managed_by_pkiwarden if info else None,
                written_by=writer,
                claimed_by=claimant if writer is None else None,
            )
        )

    involved = {who for s in secrets if (who := s.written_by or s.claimed_by)}
    if target.kind is Kind.PKI:
        involved.add(target.name)  # even when another Pki claims the same Secret first
    chosen = [p for p in pkis if name_of(p) in involved]
    policies: list[JSON] | None = None
    labels: Mapping[str, str] | None = None
    if chosen:
        policies = attempt(
            "the PkiPolicies (the policy cause below is the issuer's, from status and Events)",
            lambda: reader.list(PKI_POLICIES, None),
            None,
            POLICY_READER,
        )
    if policies is not None:
        ns = attempt(
            f"the labels of namespace {namespace} (policies selecting it by label look absent)",
            lambda: reader.get(NAMESPACES, None, namespace, metadata_only=True),
            None,
        )
        labels = ((ns or {}).get("metadata") or {}).get("labels") or {} if ns else None
    authorities: dict[str, JSON] | None = None
    if chosen:
        # After the policies: a refusal of both is said in that order.
        found_authorities = attempt(
            "the PkiAuthorities (which one signs, its phase)",
            lambda: reader.list(PKI_AUTHORITIES, None),
            None,
            POLICY_READER,
        )
        if found_authorities is not None:
            authorities = {name_of(authority): authority for authority in found_authorities}

    trust = None
    if chosen:
        config_map = attempt(
            f"the trust bundle of namespace {namespace}",
            partial(reader.get, CONFIG_MAPS, namespace, TRUST_CONFIGMAP),
            _UNREADABLE,
        )
        trust = TrustFacts(present=None) if config_map is _UNREADABLE else trust_facts(config_map)

    secrets = [
        dataclasses.replace(s, certificate=certificate_facts(leaves[s.name], trust, now))
        if s.name in leaves
        else s
        for s in secrets
    ]

    events_of: dict[str, list[JSON]] = {}
    for item in ([obj] if target.kind is Kind.POD else []) + chosen:
        uid = _uid(item)
        if uid:
            events_of[uid] = attempt(
                f"the Events of namespace {namespace}",
                partial(
                    reader.list, EVENTS, namespace, {"fieldSelector": f"involvedObject.uid={uid}"}
                ),
                [],
            )
    events = [event for found in events_of.values() for event in found]

    pki_list = tuple(
        pki_facts(
            pki,
            policies=policies,
            namespace_labels=labels,
            other_pkis=pkis,
            secrets=infos,
            issued_before=was_issued(pki, events_of.get(_uid(pki) or "", [])),
            authorities=authorities,
        )
        for pki in chosen
    )

    consumers: tuple[str, ...] = ()
    if not target.runs_pods:
        pods: list[JSON] = attempt(
            f"the Pods of namespace {namespace}", lambda: reader.list(PODS, namespace), []
        )
        watched = set(uses)
        consumers = tuple(
            f"pod/{name_of(pod)}"
            for pod in pods
            if watched & set(secret_uses(pod_spec(Kind.POD, pod)))
        )

    return Facts(
        target=target,
        secrets=tuple(secrets),
        pkis=pki_list,
        consumers=consumers,
        pkis_readable=listed is not None,
        trust=trust,
        events=event_facts(events),
        unchecked=tuple(dict.fromkeys(attempt.unchecked)),
    )


def _uid(obj: JSON) -> str | None:
    uid = (obj.get("metadata") or {}).get("uid")
    return str(uid) if uid else None
