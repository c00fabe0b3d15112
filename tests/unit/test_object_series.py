"""Per-Pki series rendered on change: the same text prometheus_client renders, kept current."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from issuer.controllers.pkis.reporting.metrics import (
    CERTIFICATE_FAMILIES,
    certificate_samples,
    certificate_series,
)
from issuer.runtime.metrics import IssuerMetrics
from issuer.runtime.object_series import ObjectSeries
from shared.kube.cache import ChangeHandler


def pki(namespace: str, name: str, ready: str | None, not_after: str | None = None) -> Any:
    status: dict[str, Any] = {}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": ready}]
    if not_after is not None:
        status["notAfter"] = not_after
    return {"metadata": {"namespace": namespace, "name": name}, "status": status}


class _Reference:
    """The families as prometheus_client builds them from the same samples, for comparison."""

    def __init__(self, pkis: list[Any]) -> None:
        self._pkis = pkis

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        families = {
            family.name: GaugeMetricFamily(
                family.name, family.documentation, labels=["namespace", "name", *family.labels]
            )
            for family in CERTIFICATE_FAMILIES
        }
        for obj in self._pkis:
            where = [obj["metadata"]["namespace"], obj["metadata"]["name"]]
            for sample in certificate_samples(obj):
                families[sample.family].add_metric([*where, *sample.labels], sample.value)
        return list(families.values())


def test_renders_what_prometheus_client_renders() -> None:
    pkis = [
        pki("apps", "web", "True", "2027-01-02T03:04:05Z"),
        pki("apps", "db", "False"),
        pki("odd", 'we"ird\\name', None),
    ]
    series = ObjectSeries(CERTIFICATE_FAMILIES, certificate_samples)
    for obj in pkis:
        series.on_change("ADDED", obj)
    registry = CollectorRegistry()
    registry.register(_Reference(pkis))
    assert series.exposition() == generate_latest(registry)


def test_renders_the_same_whatever_bytes_the_labels_hold() -> None:
    """Names holding the marks of the kept form, or a family name, come back as they were."""
    pkis = [
        pki("apps", "a\x01b", "True"),
        pki("apps\x02", "c\x00d", "False"),
        pki("apps", "pkiwarden_certificate_ready_status", "True", "2027-01-02T03:04:05Z"),
        pki("apps", "web", "True", "2027-01-02T03:04:05Z"),
    ]
    series = ObjectSeries(CERTIFICATE_FAMILIES, certificate_samples)
    for obj in pkis:
        series.on_change("ADDED", obj)
    registry = CollectorRegistry()
    registry.register(_Reference(pkis))
    expected = generate_latest(registry).splitlines()
    rendered = series.exposition().splitlines()
    assert sorted(rendered) == sorted(expected)  # the odd ones come last in their family
    assert rendered[:2] == expected[:2]


def test_an_objects_lines_are_kept_in_under_two_fifths_of_their_rendered_size() -> None:
    series = ObjectSeries(CERTIFICATE_FAMILIES, certificate_samples)
    objects = [
        pki(f"namespace-{n % 100:04d}", f"web-{n // 100:03d}", "True", "2027-01-02T03:04:05Z")
        for n in range(1000)
    ]
    for obj in objects:
        series.on_change("ADDED", obj)
    rendered = len(series.exposition()) - sum(len(header) for header in series._headers)
    kept = sum(len(key) + len(lines) for key, lines in series._rendered.items())
    assert kept < rendered * 0.4, (kept, rendered)


def test_follows_changes_and_deletions() -> None:
    series = ObjectSeries(CERTIFICATE_FAMILIES, certificate_samples)
    series.on_change("ADDED", pki("apps", "web", None))
    series.on_change("ADDED", pki("apps", "db", "True", "2027-01-02T03:04:05Z"))
    series.on_change("MODIFIED", pki("apps", "web", "True", "2027-06-01T00:00:00Z"))
    series.on_change("DELETED", pki("apps", "db", "True", "2027-01-02T03:04:05Z"))
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(series.exposition().decode())
        for sample in family.samples
    }
    web = (("name", "web"), ("namespace", "apps"))
    assert samples == {
        ("pkiwarden_certificate_expiration_timestamp_seconds", web): 1811808000.0,
        ("pkiwarden_certificate_ready_status", (("condition", "False"), *web)): 0.0,
        ("pkiwarden_certificate_ready_status", (("condition", "True"), *web)): 1.0,
        ("pkiwarden_certificate_ready_status", (("condition", "Unknown"), *web)): 0.0,
    }


def test_issuer_exposition_carries_the_certificate_families_once() -> None:
    handlers: list[ChangeHandler] = []

    class Cache:
        def add_listener(self, handler: ChangeHandler) -> None:
            handlers.append(handler)

    metrics = IssuerMetrics(CollectorRegistry())
    metrics.add_series(certificate_series(Cache()))
    for handler in handlers:
        handler("ADDED", pki("apps", "web", "True"))
    text = metrics.exposition()[0].decode()
    names = [family.name for family in text_string_to_metric_families(text)]
    assert names.count("pkiwarden_certificate_ready_status") == 1
    assert "workqueue_depth" in names
    ready = value_of(text, "pkiwarden_certificate_ready_status", condition="True")
    assert ready == 1.0


def value_of(text: str, metric: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None
