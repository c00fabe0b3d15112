"""TARGET as kubectl spells it (``pod/app2-0``, ``deploy/app2``, ``pki/app1-pki``).

Each kind knows where it lives in the API and, for Pods and their owners,
where the pod spec sits in the object, so the rest of ``why`` never switches
on kind names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.kube.client import PKIS, PODS, SECRETS, Resource


class Kind(StrEnum):
    """What ``why`` can start from; the value is the canonical TARGET prefix."""

    POD = "pod"
    DEPLOYMENT = "deployment"
    STATEFULSET = "statefulset"
    DAEMONSET = "daemonset"
    REPLICASET = "replicaset"
    JOB = "job"
    CRONJOB = "cronjob"
    PKI = "pki"
    SECRET = "secret"


ALIASES: Mapping[str, Kind] = {
    **{kind.value: kind for kind in Kind},
    **{f"{kind.value}s": kind for kind in Kind},
    "po": Kind.POD,
    "deploy": Kind.DEPLOYMENT,
    "sts": Kind.STATEFULSET,
    "ds": Kind.DAEMONSET,
    "rs": Kind.REPLICASET,
    "cj": Kind.CRONJOB,
    "pki.pkiwarden.dev": Kind.PKI,
    "pkis.pkiwarden.dev": Kind.PKI,
}

RESOURCES: Mapping[Kind, Resource] = {
    Kind.POD: PODS,
    Kind.DEPLOYMENT: Resource("apps/v1", "deployments"),
    Kind.STATEFULSET: Resource("apps/v1", "statefulsets"),
    Kind.DAEMONSET: Resource("apps/v1", "daemonsets"),
    Kind.REPLICASET: Resource("apps/v1", "replicasets"),
    Kind.JOB: Resource("batch/v1", "jobs"),
    Kind.CRONJOB: Resource("batch/v1", "cronjobs"),
    Kind.PKI: PKIS,
    Kind.SECRET: SECRETS,
}

# Where the pod spec sits in each workload kind.
_POD_SPEC_PATHS: Mapping[Kind, tuple[str, ...]] = {
    Kind.POD: ("spec",),
    Kind.DEPLOYMENT: ("spec", "template", "spec"),
    Kind.STATEFULSET: ("spec", "template", "spec"),
    Kind.DAEMONSET: ("spec", "template", "spec"),
    Kind.REPLICASET: ("spec", "template", "spec"),
    Kind.JOB: ("spec", "template", "spec"),
    Kind.CRONJOB: ("spec", "jobTemplate", "spec", "template", "spec"),
}

USAGE = (
    "TARGET is KIND/NAME with KIND one of pod, deployment, statefulset, daemonset,"
    " replicaset, job, cronjob, pki, secret"
)


class TargetError(ValueError):
    """TARGET is not KIND/NAME with a known KIND; the message says what is accepted."""


@dataclass(frozen=True)
class Target:
    kind: Kind
    name: str
    namespace: str

    @property
    def resource(self) -> Resource:
        return RESOURCES[self.kind]

    @property
    def runs_pods(self) -> bool:
        """A Pod, or an owner whose pod template says which Secrets its Pods use."""
        return self.kind in _POD_SPEC_PATHS

    def __str__(self) -> str:
        return f"{self.kind.value}/{self.name}"


def parse_target(text: str, namespace: str) -> Target:
    """``KIND/NAME`` in ``namespace``; kubectl's spellings work (``pods/x``, ``po/x``)."""
    kind_text, slash, name = text.partition("/")
    kind = ALIASES.get(kind_text.lower())
    if not slash or kind is None or not name or "/" in name:
        raise TargetError(f"{text!r}: {USAGE}, as in pod/app2-0 or pki/app1-pki")
    return Target(kind, name, namespace)


def pod_spec(kind: Kind, obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod spec of a Pod or of a workload's template; empty if absent or malformed."""
    if kind not in _POD_SPEC_PATHS:
        return {}
    current: object = obj
    for key in _POD_SPEC_PATHS[kind]:
        current = current.get(key) if isinstance(current, Mapping) else None
    return current if isinstance(current, Mapping) else {}
