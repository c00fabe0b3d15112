"""Which Pods consume a Secret: every way of referencing it, and only the same namespace."""

from __future__ import annotations

import json
from typing import Any

import pytest

from issuer.controllers.pkis.reporting.consumers import (
    Consumption,
    consuming_pods,
    consumptions,
    reading_pod,
    spec_references,
)

SECRET = "app1-tls"


def pod(name: str, spec: dict[str, Any], namespace: str = "app1") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"}, "spec": spec}


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "c", "image": "busybox", **fields}


SECRET_VOLUME = {"volumes": [{"name": "tls", "secret": {"secretName": SECRET}}]}
PROJECTED = {
    "volumes": [
        {
            "name": "all",
            "projected": {
                "sources": [
                    {"configMap": {"name": "settings"}},
                    {"secret": {"name": SECRET, "items": [{"key": "tls.crt", "path": "c"}]}},
                ]
            },
        }
    ]
}
ENV = {
    "containers": [
        container(env=[{"name": "K", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "k"}}}])
    ]
}
ENV_FROM = {"containers": [container(envFrom=[{"secretRef": {"name": SECRET}}])]}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (SECRET_VOLUME, {Consumption.VOLUME}),
        (PROJECTED, {Consumption.PROJECTED_VOLUME}),
        (ENV, {Consumption.ENV}),
        (ENV_FROM, {Consumption.ENV_FROM}),
        ({"initContainers": ENV["containers"]}, {Consumption.ENV}),
        ({"ephemeralContainers": ENV_FROM["containers"]}, {Consumption.ENV_FROM}),
        ({**SECRET_VOLUME, **ENV_FROM}, {Consumption.VOLUME, Consumption.ENV_FROM}),
        # Not consumers: other Secrets, ConfigMaps with the same name, nothing at all.
        ({"volumes": [{"name": "v", "secret": {"secretName": "other-tls"}}]}, set()),
        ({"volumes": [{"name": "v", "configMap": {"name": SECRET}}]}, set()),
        (
            {"containers": [container(envFrom=[{"configMapRef": {"name": SECRET}}])]},
            set(),
        ),
        (
            {
                "containers": [
                    container(
                        env=[
                            {"name": "A", "value": SECRET},
                            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": SECRET}}},
                        ]
                    )
                ]
            },
            set(),
        ),
        ({"containers": [container()]}, set()),
        ({}, set()),
        ({"volumes": None, "containers": "malformed"}, set()),
    ],
    ids=[
        "secret volume",
        "projected volume",
        "env secretKeyRef",
        "envFrom secretRef",
        "init container env",
        "ephemeral container envFrom",
        "two ways at once",
        "another secret",
        "configMap volume of the same name",
        "configMapRef of the same name",
        "plain value and configMapKeyRef",
        "no references",
        "empty spec",
        "malformed spec",
    ],
)
def test_each_way_of_consuming_a_secret(spec: dict[str, Any], expected: set[Consumption]) -> None:
    assert consumptions(pod("p", spec), SECRET) == expected


def test_consuming_pods_keeps_only_consumers_in_the_namespace() -> None:
    pods = [
        pod("volume", SECRET_VOLUME),
        pod("bystander", {"containers": [container()]}),
        pod("elsewhere", SECRET_VOLUME, namespace="app2"),
        pod("env-from", ENV_FROM),
        pod("projected", PROJECTED),
        pod("env", ENV),
    ]
    found = consuming_pods(pods, "app1", SECRET)
    assert [p["metadata"]["name"] for p in found] == ["volume", "env-from", "projected", "env"]


def test_no_pods_no_consumers() -> None:
    assert consuming_pods([], "app1", SECRET) == []


def test_a_cached_pod_keeps_only_its_references_to_secrets_and_the_same_answers() -> None:
    spec = {
        **PROJECTED,
        "volumes": [
            {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
            *PROJECTED["volumes"],
            {"name": "tls", "secret": {"secretName": "other-tls", "defaultMode": 420}},
            {"name": "settings", "configMap": {"name": SECRET}},
        ],
        "initContainers": [container(name="init", envFrom=[{"secretRef": {"name": SECRET}}])],
        "containers": [
            container(
                name="app",
                env=[
                    {"name": "PLAIN", "value": "x"},
                    {"name": "K", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "k"}}},
                ],
                envFrom=[{"configMapRef": {"name": "settings"}}],
                livenessProbe={"httpGet": {"path": "/", "port": 8080}},
            )
        ],
        "ephemeralContainers": ENV_FROM["containers"],
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}],
    }
    cached = reading_pod(pod("web", spec))
    assert cached is not None
    assert list(spec_references(cached["spec"])) == list(spec_references(spec))
    assert consumptions(cached, SECRET) == consumptions(pod("web", spec), SECRET)
    assert cached["metadata"] == pod("web", spec)["metadata"]
    text = json.dumps(cached)
    for dropped in ("busybox", "serviceAccountToken", "configMap", "PLAIN", "livenessProbe"):
        assert dropped not in text
    assert len(text) < len(json.dumps(spec)) / 2


def test_a_pod_that_reads_no_secret_is_not_cached() -> None:
    """Nothing is ever reported on it; a Pod with an ephemeral container reading one is."""
    plain = {"containers": [container(name="app", env=[{"name": "PLAIN", "value": "x"}])]}
    assert reading_pod(pod("web", plain)) is None
    debug = {**plain, "ephemeralContainers": ENV_FROM["containers"]}
    kept = reading_pod(pod("web", debug))
    assert kept is not None and consumptions(kept, SECRET) == {Consumption.ENV_FROM}
