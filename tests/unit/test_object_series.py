"""Per-Pki series rendered on change: the same text prometheus_client renders, kept current."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from issuer.controllers.pkis.reporting.metrics import (
    CERTIFICATE_FAMILIES,
    certificate_samples,
    certificate_series,
)
from issuer.runtime import object_series
from issuer.runtime.health import HealthServer, accepts_gzip
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
    assert_renders_as_prometheus_client(pkis)


def assert_renders_as_prometheus_client(pkis: list[Any]) -> None:
    series = ObjectSeries(CERTIFICATE_FAMILIES, certificate_samples)
    for obj in pkis:
        series.on_change("ADDED", obj)
    registry = CollectorRegistry()
    registry.register(_Reference(pkis))
    assert by_family(series.exposition()) == by_family(generate_latest(registry))


def by_family(text: bytes) -> list[tuple[bytes, ...]]:
    """Each family's header lines, then its sample lines in order of their text.

    The series of a family come bucket by bucket, not in the order the objects came.
    """
    families: list[tuple[bytes, ...]] = []
    header: list[bytes] = []
    samples: list[bytes] = []
    for line in text.splitlines():
        if line.startswith(b"# HELP") and header:
            families.append((*header, *sorted(samples)))
            header, samples = [], []
        (header if line.startswith(b"#") else samples).append(line)
    families.append((*header, *sorted(samples)))
    return families


def test_renders_the_same_whatever_bytes_the_labels_hold() -> None:
    """Names holding the marks of the kept form, or a family name, come back as they were."""
    pkis = [
        pki("apps", "a\x01b", "True"),
        pki("apps\x02", "c\x00d", "False"),
        pki("apps", "pkiwarden_certificate_ready_status", "True", "2027-01-02T03:04:05Z"),
        pki("apps", "web", "True", "2027-01-02T03:04:05Z"),
    ]
    assert_renders_as_prometheus_client(pkis)


def test_an_objects_lines_are_kept_in_under_two_fifths_of_their_rendered_size() -> None:
    series = ObjectSeries(CERTIFICATE_FAMILIES, certificate_samples)
    objects = [
        pki(f"namespace-{n % 100:04d}", f"web-{n // 100:03d}", "True", "2027-01-02T03:04:05Z")
        for n in range(1000)
    ]
    for obj in objects:
        series.on_change("ADDED", obj)
    rendered = len(series.exposition()) - sum(len(header) for header in series._headers)
    kept = sum(len(key) + len(lines) for bucket in series._buckets for key, lines in bucket.items())
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
    metrics = issuer_metrics_over([pki("apps", "web", "True")])
    text = metrics.exposition()[0].decode()
    names = [family.name for family in text_string_to_metric_families(text)]
    assert names.count("pkiwarden_certificate_ready_status") == 1
    assert "workqueue_depth" in names
    ready = value_of(text, "pkiwarden_certificate_ready_status", condition="True")
    assert ready == 1.0


def issuer_metrics_over(pkis: list[Any]) -> IssuerMetrics:
    """The issuer's metrics with the certificate series of ``pkis``, as a cache would add them."""
    handlers: list[ChangeHandler] = []

    class Cache:
        def add_listener(self, handler: ChangeHandler) -> None:
            handlers.append(handler)

    metrics = IssuerMetrics(CollectorRegistry())
    metrics.add_series(certificate_series(Cache()))
    for obj in pkis:
        for handler in handlers:
            handler("ADDED", obj)
    return metrics


def value_of(text: str, metric: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None


def many(count: int, ready: str = "True") -> list[Any]:
    return [
        pki(f"namespace-{n % 100:04d}", f"web-{n // 100:03d}", ready, "2027-01-02T03:04:05Z")
        for n in range(count)
    ]


def test_the_gzip_exposition_is_the_plain_one_compressed_through_changes() -> None:
    series = ObjectSeries(CERTIFICATE_FAMILIES, certificate_samples)
    odd = [pki("apps", "a\x01b", "True"), pki("apps\x02", "c\x00d", "False")]
    for obj in [*many(500), *odd]:
        series.on_change("ADDED", obj)
    assert gzip.decompress(series.gzip_exposition()) == series.exposition()
    for obj in many(50, ready="False"):
        series.on_change("MODIFIED", obj)
    series.on_change("DELETED", odd[0])
    series.on_change("DELETED", many(1)[0])
    text = gzip.decompress(series.gzip_exposition())
    assert text == series.exposition()
    names = [family.name for family in text_string_to_metric_families(text.decode())]
    assert len(names) == len(set(names))  # each family in one piece


def test_a_gzip_scrape_compresses_only_the_buckets_that_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    series = ObjectSeries(CERTIFICATE_FAMILIES, certificate_samples)
    for obj in many(2000):
        series.on_change("ADDED", obj)
    first = series.gzip_exposition()
    compressed: list[bytes] = []
    real = object_series._gzip
    monkeypatch.setattr(object_series, "_gzip", lambda data: compressed.append(data) or real(data))
    assert series.gzip_exposition() == first  # idle: nothing compressed again
    assert compressed == []
    series.on_change("MODIFIED", many(1, ready="False")[0])
    assert gzip.decompress(series.gzip_exposition()) == series.exposition()
    assert 0 < len(compressed) <= len(CERTIFICATE_FAMILIES)  # one bucket's families


def test_the_gzip_members_are_a_tenth_of_the_text_or_less() -> None:
    series = ObjectSeries(CERTIFICATE_FAMILIES, certificate_samples)
    for obj in many(20_000):
        series.on_change("ADDED", obj)
    assert len(series.gzip_exposition()) * 10 < len(series.exposition())


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("gzip", True),
        ("gzip, deflate", True),
        ("deflate, GZIP;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0", False),
        ("identity", False),
        ("deflate, br", False),
        ("gzip;q=bad", False),
        ("", False),
        (None, False),
    ],
)
def test_accept_encoding(header: str | None, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted


def test_the_issuer_serves_metrics_gzipped_to_a_client_that_asks() -> None:
    import urllib3  # noqa: PLC0415 - this test's client only

    metrics = issuer_metrics_over(many(300))
    server = HealthServer(0, "127.0.0.1")
    server.add_route("/metrics", metrics.response, gzip=metrics.gzip_response)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        http = urllib3.PoolManager()
        zipped = http.request("GET", url, headers={"Accept-Encoding": "gzip"}, decode_content=False)
        plain = http.request("GET", url, headers={"Accept-Encoding": "identity"})
    finally:
        server.stop()
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Vary"] == "Accept-Encoding"
    assert "Content-Encoding" not in plain.headers
    unzipped = gzip.decompress(zipped.data)
    first = b"# HELP pkiwarden_certificate"  # before it, process figures that move
    assert unzipped[unzipped.index(first) :] == plain.data[plain.data.index(first) :]
    ready = value_of(plain.data.decode(), "pkiwarden_certificate_ready_status", condition="True")
    assert ready == 1.0
