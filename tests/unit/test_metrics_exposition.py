"""``/metrics`` of the issuer as ``issuer run`` assembles it: one family per name.

Two modules once each registered a family called
``pkiwarden_ca_expiration_timestamp_seconds``. prometheus_client does not
notice when one side is a scrape-time collector, and Prometheus then rejects
the whole scrape, so the check reads the exposition itself.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from kubernetes.client import Configuration
from prometheus_client.parser import text_string_to_metric_families

from issuer.controllers.authorities.controller import AuthorityController
from issuer.controllers.authorities.decisions.phases import Phase
from issuer.controllers.authorities.reporting.summary import Pass
from issuer.controllers.pkis.controller import PkiController, reconcile_result
from issuer.run import LEASE_NAME, assemble, runtime_for
from issuer.runtime.metrics import IssuerMetrics
from issuer.runtime.settings import Settings
from shared.kube.client import Kube
from webhook.metrics import WebhookMetrics


def repeated_families(exposition: bytes) -> list[str]:
    """Family names that occur more than once in a text exposition.

    prometheus_client's parser yields a family again when its name comes back
    after another family, but merges two in a row into one; Prometheus rejects
    both ("second TYPE line"), so the TYPE lines are counted as well.
    """
    text = exposition.decode()
    parsed = Counter(f.name for f in text_string_to_metric_families(text))
    declared = Counter(line.split()[2] for line in text.splitlines() if line.startswith("# TYPE "))
    return sorted(name for name in parsed | declared if parsed[name] > 1 or declared[name] > 1)


CA_FAMILY = "pkiwarden_ca_expiration_timestamp_seconds"
BY_AUTHORITY = f'# TYPE {CA_FAMILY} gauge\n{CA_FAMILY}{{authority="default"}} 1.0\n'
BY_SECRET = f'# TYPE {CA_FAMILY} gauge\n{CA_FAMILY}{{namespace="a",secret="b"}} 1.0\n'
OTHER = "# TYPE workqueue_depth gauge\nworkqueue_depth 0.0\n"


def test_repeated_families_are_found_apart_and_in_a_row() -> None:
    assert repeated_families((BY_AUTHORITY + OTHER + BY_SECRET).encode()) == [CA_FAMILY]
    assert repeated_families((BY_AUTHORITY + BY_SECRET).encode()) == [CA_FAMILY]
    assert repeated_families((BY_AUTHORITY + OTHER).encode()) == []


def test_the_issuers_metrics_have_no_repeated_family() -> None:
    metrics = IssuerMetrics(lease=LEASE_NAME)
    kube = Kube(Configuration())  # never called: nothing is started
    controller, authority = assemble(runtime_for(kube, Settings(), metrics, None))
    assert isinstance(controller, PkiController)
    assert isinstance(authority, AuthorityController)
    last = Pass(phase=Phase.STABLE, active_not_after=datetime(2036, 1, 1, tzinfo=UTC))
    authority.metrics.observe("default", last)
    metrics.observe_reconcile(reconcile_result(None, None), 0.01)
    metrics.event_emitted("Normal", "Issued")
    metrics.leading(True)
    controller.queue.add("app1/app1-pki")
    exposition, _ = metrics.exposition()
    families = {f.name for f in text_string_to_metric_families(exposition.decode())}
    assert {
        "pkiwarden_ca_expiration_timestamp_seconds",
        "pkiwarden_ca_rotation_phase",
        "pkiwarden_ca_rotation_phase_start_timestamp_seconds",
        "pkiwarden_certificate_expiration_timestamp_seconds",
        "controller_runtime_reconcile",
        "workqueue_depth",
        "leader_election_master_status",
    } <= families
    assert repeated_families(exposition) == []


def test_the_webhooks_metrics_have_no_repeated_family() -> None:
    metrics = WebhookMetrics(lambda: {"pkis": True})
    metrics.requests.labels("Pki", "CREATE", "true").inc()
    assert repeated_families(metrics.exposition()) == []
