"""pkiwarden's recording and alerting rules: every expression, written once.

The issuer runs several replicas and each exports the certificate series from
its own cache, so per-Pki series are first reduced to one per Pki by
recording rules (``namespace_name:...``); the alerts then read one series per
object and fire once. The CA's series come from the leader alone (only it
runs the CA's loop) and are reduced by authority the same way, so a change of
leader keeps one series. Thresholds and ``for`` durations are settings: the
shipped files use the defaults, the end-to-end test renders the same rules
with ``for`` of a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from issuer.run import LEASE_NAME
from webhook.registration import PKIS_WEBHOOK, POLICIES_WEBHOOK, TIMEOUT_SECONDS

DAY = 86400


class Severity(StrEnum):
    CRITICAL = "critical"  # pkiwarden cannot do its job now: page
    WARNING = "warning"  # something will break, or breaks for some teams: a ticket


@dataclass(frozen=True)
class Settings:
    """Where the series come from, the thresholds, and how long a condition must hold."""

    webhook_job: str = "pkiwarden-webhook"
    issuer_job: str = "pkiwarden-issuer"
    lease: str = LEASE_NAME
    expiry_days: int = 7  # a certificate this close to notAfter, past its renewal time
    ca_expiry_days: int = 30  # leaves time to bring and roll out a new CA
    # Longer than every phase takes with the default timings (trustPropagation 1h,
    # 10 re-issues per second): a rotation this long in one phase is waiting on something.
    rotation_phase_hours: int = 6
    issuance_failures: int = 5  # consecutive failed attempts (about a minute of backoff)
    rejection_ratio: float = 0.5  # share of reviews denied
    rejection_min_rate: float = 0.05  # reviews per second, so one bad apply never pages
    p99_latency_seconds: float = 0.5  # a tenth of the API server's timeout
    # A Pod waits in ContainerCreating until its PodCertificateRequest is answered;
    # the signer answers in well under a second.
    pod_certificate_wait_seconds: int = 300
    for_override: str | None = None  # tests: every ``for`` this short

    def pending(self, duration: str) -> str:
        return self.for_override or duration

    def issuer(self, **labels: str) -> str:
        return _selector(job=self.issuer_job, **labels)

    def webhook(self, **labels: str) -> str:
        return _selector(job=self.webhook_job, **labels)


def short(settings: Settings, duration: str = "1s") -> Settings:
    """The same rules with every ``for`` set to ``duration``, for tests that cannot wait."""
    return replace(settings, for_override=duration)


def _selector(**labels: str) -> str:
    return "{" + ", ".join(f'{key}="{value}"' for key, value in labels.items()) + "}"


@dataclass(frozen=True)
class Record:
    """A recording rule: ``record`` names the result of ``expr``."""

    record: str
    expr: str

    def rule(self) -> dict[str, Any]:
        return {"record": self.record, "expr": self.expr}


@dataclass(frozen=True)
class Alert:
    alert: str
    expr: str
    duration: str
    severity: Severity
    summary: str
    description: str

    def rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.alert, "expr": self.expr}
        if self.duration != "0s":
            rule["for"] = self.duration
        rule["labels"] = {"severity": self.severity.value}
        rule["annotations"] = {"summary": self.summary, "description": self.description}
        return rule


@dataclass(frozen=True)
class Records:
    """The recording rules, by role, so alerts and panels refer to them by attribute."""

    expiry: Record
    renewal: Record
    ready: Record
    failures: Record
    ca_expiry: Record
    ca_phase: Record
    ca_phase_start: Record
    ca_pending: Record
    ca_blocked: Record
    admission_rate: Record
    rejection_ratio: Record
    latency_p99: Record

    def all(self) -> list[Record]:
        return [
            self.expiry,
            self.renewal,
            self.ready,
            self.failures,
            self.ca_expiry,
            self.ca_phase,
            self.ca_phase_start,
            self.ca_pending,
            self.ca_blocked,
            self.admission_rate,
            self.rejection_ratio,
            self.latency_p99,
        ]


def records(s: Settings) -> Records:
    reviews = f"pkiwarden_admission_requests_total{s.webhook()}"
    denied = f"pkiwarden_admission_requests_total{s.webhook(allowed='false')}"
    return Records(
        expiry=Record(
            "namespace_name:pkiwarden_certificate_expiration_timestamp_seconds:max",
            "max by (namespace, name) "
            f"(pkiwarden_certificate_expiration_timestamp_seconds{s.issuer()})",
        ),
        renewal=Record(
            "namespace_name:pkiwarden_certificate_renewal_timestamp_seconds:max",
            "max by (namespace, name) "
            f"(pkiwarden_certificate_renewal_timestamp_seconds{s.issuer()})",
        ),
        ready=Record(
            "namespace_name:pkiwarden_certificate_ready:max",
            "max by (namespace, name) "
            f"(pkiwarden_certificate_ready_status{s.issuer(condition='True')})",
        ),
        failures=Record(
            "namespace_name_reason:pkiwarden_certificate_failed_issuance_attempts:max",
            "max by (namespace, name, reason) "
            f"(pkiwarden_certificate_failed_issuance_attempts{s.issuer()})",
        ),
        ca_expiry=Record(
            "authority:pkiwarden_ca_expiration_timestamp_seconds:max",
            f"max by (authority) (pkiwarden_ca_expiration_timestamp_seconds{s.issuer()})",
        ),
        ca_phase=Record(
            "authority_phase:pkiwarden_ca_rotation_phase:max",
            f"max by (authority, phase) (pkiwarden_ca_rotation_phase{s.issuer()})",
        ),
        ca_phase_start=Record(
            "authority:pkiwarden_ca_rotation_phase_start_timestamp_seconds:max",
            f"max by (authority) (pkiwarden_ca_rotation_phase_start_timestamp_seconds{s.issuer()})",
        ),
        ca_pending=Record(
            "authority:pkiwarden_ca_pending_reissue:max",
            f"max by (authority) (pkiwarden_ca_pending_reissue{s.issuer()})",
        ),
        ca_blocked=Record(
            "authority:pkiwarden_ca_blocked_reissue:max",
            f"max by (authority) (pkiwarden_ca_blocked_reissue{s.issuer()})",
        ),
        admission_rate=Record(
            "job:pkiwarden_admission_requests:rate10m",
            f"sum by (job) (rate({reviews}[10m]))",
        ),
        rejection_ratio=Record(
            "job:pkiwarden_admission_rejections:ratio_rate10m",
            f"sum by (job) (rate({denied}[10m])) / sum by (job) (rate({reviews}[10m]))",
        ),
        latency_p99=Record(
            "job:pkiwarden_admission_duration_seconds:p99_rate5m",
            "histogram_quantile(0.99, sum by (job, le) "
            f"(rate(pkiwarden_admission_duration_seconds_bucket{s.webhook()}[5m])))",
        ),
    )


PKI = "Pki {{ $labels.namespace }}/{{ $labels.name }}"
DESCRIBE = "kubectl describe pki -n {{ $labels.namespace }} {{ $labels.name }}"
AUTHORITY = "PkiAuthority {{ $labels.authority }}"
CA_STATUS = "pkiwarden ca status --authority {{ $labels.authority }}"


def alerts(s: Settings) -> list[Alert]:
    r = records(s)
    webhooks = f"{PKIS_WEBHOOK}|{POLICIES_WEBHOOK}"
    return [
        Alert(
            "PkiwardenCertificateExpiringSoon",
            f"({r.expiry.record} - time() < {s.expiry_days * DAY})"
            f" and on (namespace, name) ({r.renewal.record} < time())",
            s.pending("15m"),
            Severity.WARNING,
            f"The certificate of {PKI} expires within {s.expiry_days} days and was not renewed.",
            f"{PKI} is past its renewal time and its certificate expires within"
            f" {s.expiry_days} days; the application's TLS breaks when it does. The Ready"
            f" condition and the Warning Events say why renewal fails: {DESCRIBE}.",
        ),
        Alert(
            "PkiwardenPkiNotReady",
            f"{r.ready.record} == 0",
            s.pending("15m"),
            Severity.WARNING,
            f"{PKI} is not Ready.",
            f"{PKI} has had no valid certificate matching its spec for 15 minutes, so the"
            f" Pods that mount its Secret cannot start or serve TLS. The Ready condition says"
            f" why and what to change: {DESCRIBE}.",
        ),
        Alert(
            "PkiwardenIssuanceFailing",
            f"{r.failures.record} >= {s.issuance_failures}",
            s.pending("5m"),
            Severity.WARNING,
            f"Issuing a certificate for {PKI} keeps failing ({{{{ $labels.reason }}}}).",
            f"The issuer has failed {s.issuance_failures} or more times in a row to issue the"
            f" certificate of {PKI}, with reason {{{{ $labels.reason }}}}; it retries with"
            f" backoff up to an hour. The README's run-time table says what the reason"
            f" means; the Events say which field or object: {DESCRIBE}.",
        ),
        Alert(
            "PkiwardenCAExpiringSoon",
            f"{r.ca_expiry.record} - time() < {s.ca_expiry_days * DAY}",
            s.pending("1h"),
            Severity.WARNING,
            f"The signing CA of {AUTHORITY} expires within {s.ca_expiry_days} days.",
            f"The active CA of {AUTHORITY} expires within {s.ca_expiry_days} days. No"
            " certificate is issued past the CA's notAfter, so every renewal gets a shorter"
            " certificate, and when the CA expires nothing can be issued. Rotate to a new"
            " CA: name a Secret holding it in spec.nextSecretName, or run pkiwarden ca"
            " rotate --authority {{ $labels.authority }} if pkiwarden generates the CA;"
            f" {CA_STATUS} shows where it stands.",
        ),
        Alert(
            "PkiwardenCARotationBlocked",
            f"{r.ca_blocked.record} > 0",
            s.pending("30m"),
            Severity.WARNING,
            f"The CA rotation of {AUTHORITY} is blocked by Pkis that cannot be re-issued.",
            f"Some Pkis of {AUTHORITY} could not be re-issued by the new CA for"
            " 30 minutes (their policy no longer allows them, say). The previous CA stays"
            " trusted for them and the rotation cannot finish until each is fixed or its"
            f" certificate expires. {CA_STATUS} (status.blockedPkis) names them; kubectl"
            " describe pki on each says why and what to change.",
        ),
        Alert(
            "PkiwardenCARotationStuck",
            # Measured from the phase's start as the CA Secret records it, not with a
            # `for` as long as the threshold: an issuer outage or a new leader would
            # restart that clock, and a rotation stuck for days would never alert.
            f'{r.ca_phase.record}{{phase!="Stable"}} == 1'
            f" and on (authority) ({r.ca_phase_start.record} > 0)"
            f" and on (authority) (time() - {r.ca_phase_start.record}"
            f" > {s.rotation_phase_hours * 3600})"
            f" unless on (authority) {r.ca_blocked.record} > 0",
            s.pending("10m"),
            Severity.WARNING,
            f"The CA rotation of {AUTHORITY} has been {{{{ $labels.phase }}}} for over"
            f" {s.rotation_phase_hours} hours.",
            f"The CA rotation of {AUTHORITY} has stayed in phase {{{{ $labels.phase }}}} for"
            f" over {s.rotation_phase_hours} hours (counted from the phase's start recorded in"
            " the CA Secret, through issuer restarts), longer than the default timings take."
            " Propagating waits until every pkiwarden-ca.crt ConfigMap and issued Secret"
            " holds the trust set, then spec.rotation.trustPropagation; Reissuing until"
            " every Pki is re-issued at spec.rotation.reissueRate; Retiring for"
            f" trustPropagation. {CA_STATUS} and the PkiAuthority's Events say what it waits"
            " on (the issuer's log names a write that failed). With a trustPropagation"
            " longer than this, raise the alert's threshold.",
        ),
        Alert(
            "PkiwardenWebhookDown",
            f"absent(up{s.webhook()} == 1)",
            s.pending("5m"),
            Severity.CRITICAL,
            "No pkiwarden webhook replica is up.",
            f"Prometheus has not scraped any {s.webhook_job} replica for 5 minutes. The"
            " webhook fails closed: the API server refuses every Pki and PkiPolicy write"
            " until it is back (issued certificates keep being renewed). Check"
            " kubectl -n pkiwarden-system get pods,endpoints -l"
            " app.kubernetes.io/name=pkiwarden-webhook and the Pods' logs.",
        ),
        Alert(
            "PkiwardenWebhookErrors",
            "sum by (job) (increase(pkiwarden_admission_internal_errors_total"
            f"{s.webhook()}[10m])) > 0",
            s.pending("0s"),
            Severity.WARNING,
            "The pkiwarden webhook failed while answering admission reviews.",
            "The webhook {{ $labels.job }} denied reviews in the last 10 minutes because it"
            " failed itself, not because the object was wrong; the user saw an internal"
            " error. Its log has the traceback (kubectl -n pkiwarden-system logs"
            " -l app.kubernetes.io/name=pkiwarden-webhook); report it as a bug.",
        ),
        Alert(
            "PkiwardenWebhookCallsFailing",
            "sum by (name) (rate(apiserver_admission_webhook_rejection_count"
            f'{{name=~"{webhooks}", error_type=~"calling_webhook_error|apiserver_internal_error"}}'
            "[5m])) > 0",
            s.pending("5m"),
            Severity.CRITICAL,
            "The API server cannot call the pkiwarden webhook {{ $labels.name }}.",
            "The API server failed to call the admission webhook {{ $labels.name }} (timeout,"
            " TLS or connection error) and, failing closed, refused the write. Check that"
            " the webhook Pods are Ready, that the Service pkiwarden-webhook has endpoints,"
            " and that the ValidatingWebhookConfiguration pkiwarden has a current caBundle.",
        ),
        Alert(
            "PkiwardenWebhookHighRejectionRate",
            f"{r.rejection_ratio.record} > {s.rejection_ratio}"
            f" and {r.admission_rate.record} > {s.rejection_min_rate}",
            s.pending("15m"),
            Severity.WARNING,
            "The pkiwarden webhook denies most Pki and PkiPolicy writes.",
            f"More than {s.rejection_ratio:.0%} of the admission reviews answered by"
            " {{ $labels.job }} in the last 10 minutes were denied. Usually a pipeline"
            " keeps applying a manifest that a PkiPolicy does not allow; the denial"
            " messages name the field and the fix (run pkiwarden lint on the manifests),"
            " or a PkiPolicy change removed names teams use.",
        ),
        Alert(
            "PkiwardenWebhookSlow",
            f"{r.latency_p99.record} > {s.p99_latency_seconds}",
            s.pending("10m"),
            Severity.WARNING,
            "The pkiwarden webhook answers slowly.",
            f"The p99 admission latency of {{{{ $labels.job }}}} is above"
            f" {s.p99_latency_seconds} s; the API server waits for it on every Pki and"
            f" PkiPolicy write and refuses the write after {TIMEOUT_SECONDS} s. Check the"
            " webhook Pods' CPU limits and throttling, and their log for cache re-lists.",
        ),
        Alert(
            "PkiwardenPodCertificateSignerNotAnswering",
            f"max(pkiwarden_pod_certificate_oldest_pending_seconds{s.issuer()})"
            f" > {s.pod_certificate_wait_seconds}",
            s.pending("2m"),
            Severity.CRITICAL,
            "A PodCertificateRequest for a pkiwarden signer has waited for an answer for"
            f" more than {s.pod_certificate_wait_seconds // 60} minutes.",
            "The kubelet keeps a Pod that mounts a podCertificate volume for a"
            " pkiwarden.dev/ signer in ContainerCreating until the issuer answers its"
            " PodCertificateRequest, and one has waited for more than"
            f" {s.pod_certificate_wait_seconds // 60} minutes: no issuer leads, the leader"
            " cannot write (its RBAC needs sign on signers pkiwarden.dev/* and update on"
            " podcertificaterequests/status), or the signer names an authority no issuer"
            " serves. kubectl get podcertificaterequests -A shows the waiting ones; the"
            " issuer's log says why.",
        ),
        Alert(
            "PkiwardenIssuerNoLeader",
            f"absent(leader_election_master_status{s.issuer(name=s.lease)} == 1)",
            s.pending("5m"),
            Severity.CRITICAL,
            "No pkiwarden issuer holds the leader Lease.",
            f"No issuer replica has led (Lease pkiwarden-system/{s.lease}) for 5 minutes:"
            " nothing is issued or renewed. Check kubectl -n pkiwarden-system get"
            f" pods -l app.kubernetes.io/name=pkiwarden-issuer, the Lease {s.lease}, and"
            " the Pods' logs (an issuer that cannot reach the API server exits).",
        ),
    ]


def groups(s: Settings) -> list[dict[str, Any]]:
    """The rule groups of a Prometheus rule file (and of the PrometheusRule's spec)."""
    return [
        {"name": "pkiwarden.rules", "rules": [record.rule() for record in records(s).all()]},
        {"name": "pkiwarden.alerts", "rules": [alert.rule() for alert in alerts(s)]},
    ]
