"""The chart's values: one table gives values.yaml, values.schema.json and the README's list.

Defaults that ``deploy/`` also states (replicas, resources, the spread, the
webhook's failurePolicy and timeout, the image) are read from the kustomize
output by :func:`defaults`, so the chart's defaults are ``deploy/``'s and
``helm template`` with no values renders what ``kubectl kustomize deploy/``
does.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from issuer.runtime.signers import CA_SECRETS_ROLE

Json = dict[str, Any]

WEBHOOK_DEPLOYMENT = "pkiwarden-webhook"
ISSUER_DEPLOYMENT = "pkiwarden-issuer"
ISSUER_ROLE = CA_SECRETS_ROLE  # the issuer's Role in its own namespace: the CA Secrets
CONFIGURATION = "pkiwarden"
FAILURE_POLICIES = ("Fail", "Ignore")

_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
# At least one name: a rule with an empty resourceNames would grant every Secret.
_SECRET_NAMES = {
    "type": "array",
    "items": {
        "type": "string",
        "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        "maxLength": 253,
    },
    "minItems": 1,
    "uniqueItems": True,
}
_MAP_OF_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_OBJECT = {"type": "object"}
_LIST_OF_OBJECTS = {"type": "array", "items": {"type": "object"}}


@dataclass(frozen=True)
class Value:
    """One value: its dotted path, JSON schema, default (None: from deploy/) and meaning."""

    path: str
    schema: Json
    default: Any
    doc: str


def _workload(component: str, what: str) -> list[Value]:
    return [
        Value(
            f"{component}.replicas",
            {"type": "integer", "minimum": 0},
            None,
            f"Replicas of the {what} Deployment.",
        ),
        Value(
            f"{component}.resources",
            _OBJECT,
            None,
            f"The {what} container's resource requests and limits.",
        ),
        Value(
            f"{component}.priorityClassName",
            {"type": "string"},
            "",
            f"PriorityClass of the {what} Pods (none if empty).",
        ),
        Value(
            f"{component}.topologySpreadConstraints",
            _LIST_OF_OBJECTS,
            None,
            f"How the {what} replicas spread; by default over nodes (kubernetes.io/hostname),"
            " ScheduleAnyway. An empty list removes the constraint.",
        ),
        Value(
            f"{component}.affinity",
            _OBJECT,
            {},
            f"Affinity of the {what} Pods, e.g. a podAntiAffinity that requires separate nodes.",
        ),
        Value(
            f"{component}.nodeSelector",
            _MAP_OF_STRINGS,
            {},
            f"Node labels the {what} Pods require.",
        ),
        Value(
            f"{component}.tolerations",
            _LIST_OF_OBJECTS,
            [],
            f"Tolerations of the {what} Pods.",
        ),
        Value(
            f"{component}.podAnnotations",
            _MAP_OF_STRINGS,
            {},
            f"Annotations on the {what} Pods.",
        ),
    ]


TABLE: tuple[Value, ...] = (
    Value(
        "image.repository",
        {"type": "string", "minLength": 1},
        None,
        "Image of the webhook, the issuer and the bootstrap Job (one image for all).",
    ),
    Value("image.tag", {"type": "string"}, None, "Image tag; may be empty when a digest is set."),
    Value(
        "image.digest",
        {"type": "string", "pattern": r"^(sha256:[0-9a-f]{64})?$"},
        "",
        "Image digest (sha256:...); when set the Pods name the image by it. The released chart"
        " sets it.",
    ),
    *_workload("webhook", "webhook"),
    Value(
        "webhook.failurePolicy",
        {"type": "string", "enum": list(FAILURE_POLICIES)},
        None,
        "What the API server does when the webhook cannot answer: Fail refuses the Pki,"
        " PkiPolicy or PkiAuthority (nothing unchecked gets in); Ignore lets it in unchecked.",
    ),
    Value(
        "webhook.timeoutSeconds",
        {"type": "integer", "minimum": 1, "maximum": 30},
        None,
        "How long the API server waits for the webhook (1 to 30 s).",
    ),
    Value(
        "webhook.excludeNamespaces",
        {"type": "array", "items": _NAME},
        [],
        "Namespaces the webhook never sees, besides pkiwarden's own.",
    ),
    *_workload("issuer", "issuer"),
    Value(
        "issuer.shards",
        {"type": "integer", "minimum": 1},
        1,
        "Shards the application namespaces are split into, one Lease each (the issuer's"
        " --shards): each replica caches and works only the shards it leads. 1 is one Lease,"
        " as without sharding. Above 1 the chart adds deploy/sharding's Role"
        " pkiwarden-issuer-shards (get, list, update and delete on Leases in pkiwarden-system);"
        " set issuer.replicas to the count too: memory and work divide by the replicas.",
    ),
    Value(
        "issuer.caSecretNames",
        _SECRET_NAMES,
        None,
        "The CA Secret of every PkiAuthority (its spec.secretName), in pkiwarden-system: the"
        " issuer may read and update these and no other Secret there. List each authority's;"
        " one missing here is reported on its PkiAuthority, naming what to add.",
    ),
    Value(
        "issuer.nextCASecretNames",
        _SECRET_NAMES,
        None,
        "Secrets a platform team supplies as a PkiAuthority's spec.nextSecretName (the next"
        " CA of a rotation), in pkiwarden-system: the issuer may read these.",
    ),
    Value(
        "monitoring.enabled",
        {"type": "boolean"},
        False,
        "The prometheus-operator objects of deploy/monitoring: the issuer's metrics Service,"
        " the ServiceMonitors, the PrometheusRule and the Grafana dashboard ConfigMap. Needs"
        " the operator's CRDs.",
    ),
    Value(
        "tenants",
        {"type": "array", "items": _NAME, "uniqueItems": True},
        [],
        "Application namespaces to onboard: each gets deploy/tenants' RoleBindings so the"
        " issuer may write its certificate Secrets there. The namespaces must exist.",
    ),
    Value(
        "bootstrap.enabled",
        {"type": "boolean"},
        False,
        "Run deploy/overlays/dev's Job: a self-signed development CA in Secret pkiwarden-ca"
        " (never replaces one that exists) and the PkiAuthority `authority` naming it."
        " Production brings its own CA Secret and PkiAuthority instead.",
    ),
    Value(
        "authority",
        _NAME,
        "default",
        "The PkiAuthority this installation serves: the issuer's --authority (its trust set,"
        " rotation and status) and the one the bootstrap Job creates for its CA.",
    ),
)


def _deployment(objects: list[Json], name: str) -> Json:
    for item in objects:
        if item["kind"] == "Deployment" and item["metadata"]["name"] == name:
            return item
    raise LookupError(f"kustomize output has no Deployment {name}")


def split_image(reference: str) -> tuple[str, str, str]:
    """``repo[:tag][@digest]`` -> (repository, tag, digest); a registry port is not a tag."""
    name, _, digest = reference.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest
    return name, "", digest


def deploy_image(base: list[Json]) -> str:
    """The image deploy/'s webhook Deployment runs: pkiwarden's one image."""
    pod = _deployment(base, WEBHOOK_DEPLOYMENT)["spec"]["template"]["spec"]
    return str(pod["containers"][0]["image"])


def ca_secret_rules(role: Json) -> tuple[int, int]:
    """Indexes of the issuer Role's two rules by Secret name: the CA Secrets, the next CAs.

    The CA Secrets' rule is the one that may update; the next CAs' may only get.
    """
    found: dict[str, int] = {}
    for index, rule in enumerate(role.get("rules") or []):
        if rule.get("resources") != ["secrets"] or not rule.get("resourceNames"):
            continue
        found["ca" if "update" in rule.get("verbs", []) else "next"] = index
    if set(found) != {"ca", "next"}:
        raise LookupError(
            f"Role {ISSUER_ROLE} has no rule by name for the CA Secrets and one for the next CAs"
        )
    return found["ca"], found["next"]


def _issuer_role(objects: list[Json]) -> Json:
    for item in objects:
        if item["kind"] == "Role" and item["metadata"]["name"] == ISSUER_ROLE:
            return item
    raise LookupError(f"kustomize output has no Role {ISSUER_ROLE}")


def deploy_defaults(base: list[Json]) -> dict[str, Any]:
    """The defaults ``deploy/`` states, read from its kustomize output, by dotted path."""
    found: dict[str, Any] = {}
    for component, name in (("webhook", WEBHOOK_DEPLOYMENT), ("issuer", ISSUER_DEPLOYMENT)):
        deployment = _deployment(base, name)
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        found[f"{component}.replicas"] = deployment["spec"]["replicas"]
        found[f"{component}.resources"] = container.get("resources", {})
        found[f"{component}.topologySpreadConstraints"] = pod.get("topologySpreadConstraints", [])
        repository, tag, digest = split_image(container["image"])
        found["image.repository"], found["image.tag"] = repository, tag
        found["image.digest"] = digest
    registration = next(item for item in base if item["kind"] == "ValidatingWebhookConfiguration")
    first = registration["webhooks"][0]
    found["webhook.failurePolicy"] = first["failurePolicy"]
    found["webhook.timeoutSeconds"] = first["timeoutSeconds"]
    role = _issuer_role(base)
    ca, following = ca_secret_rules(role)
    found["issuer.caSecretNames"] = role["rules"][ca]["resourceNames"]
    found["issuer.nextCASecretNames"] = role["rules"][following]["resourceNames"]
    return found


def values(base: list[Json]) -> Json:
    """values.yaml as a nested mapping: the table's defaults, deploy/'s where it states one."""
    stated = deploy_defaults(base)
    tree: Json = {}
    for value in TABLE:
        default = stated.get(value.path, value.default)
        if default is None:
            raise LookupError(f"no default for {value.path} in deploy/")
        *parents, leaf = value.path.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = copy.deepcopy(default)
    return tree


def schema() -> Json:
    """values.schema.json: every value typed, nothing else allowed, so a typo fails too."""
    root: Json = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "properties": {},
    }
    for value in TABLE:
        *parents, leaf = value.path.split(".")
        node = root
        for part in parents:
            node = node["properties"].setdefault(
                part, {"type": "object", "additionalProperties": False, "properties": {}}
            )
        node["properties"][leaf] = {"description": value.doc, **value.schema}
    _require_all(root)
    return root


def _require_all(node: Json) -> None:
    properties = node.get("properties")
    if isinstance(properties, Mapping):
        node["required"] = list(properties)
        for child in properties.values():
            _require_all(child)
