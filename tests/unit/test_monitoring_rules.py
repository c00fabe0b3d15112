"""The shipped alerts under ``promtool test rules``: series in, alerts out, firing and not.

Runs the committed rule file (which another test keeps equal to the
generator's output) through Prometheus's own rule engine. Each alert has a
case that fires, with its exact labels and annotations, and cases that must
stay silent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from pkiwarden.monitoring import manifests
from pkiwarden.monitoring.rules import Settings, alerts

REPO = Path(__file__).resolve().parents[2]
RULE_FILE = REPO / "deploy" / "monitoring" / manifests.RULE_FILE
ISSUER = 'job="pkiwarden-issuer"'
WEBHOOK = 'job="pkiwarden-webhook"'
DAY = 86400


@dataclass(frozen=True)
class Case:
    """Input series, and the alerts (by their labels) expected at ``at``."""

    series: dict[str, str]
    at: str
    fires: list[dict[str, str]] = field(default_factory=list)


def pki(**extra: str) -> dict[str, str]:
    return {"namespace": "app2", "name": "app2-pki", **extra}


CASES: dict[str, list[Case]] = {
    "PkiwardenCertificateExpiringSoon": [
        # Two issuer replicas export the same Pki: one alert.
        Case(
            {
                f'pkiwarden_certificate_expiration_timestamp_seconds{{{ISSUER}, instance="a", namespace="app2", name="app2-pki"}}': f"{3 * DAY}x30",  # noqa: E501
                f'pkiwarden_certificate_expiration_timestamp_seconds{{{ISSUER}, instance="b", namespace="app2", name="app2-pki"}}': f"{3 * DAY}x30",  # noqa: E501
                f'pkiwarden_certificate_renewal_timestamp_seconds{{{ISSUER}, instance="a", namespace="app2", name="app2-pki"}}': "0x30",  # noqa: E501
            },
            "20m",
            [pki()],
        ),
        Case(  # renewal not due yet (renewBefore shorter than the threshold)
            {
                f'pkiwarden_certificate_expiration_timestamp_seconds{{{ISSUER}, namespace="app2", name="app2-pki"}}': f"{3 * DAY}x30",  # noqa: E501
                f'pkiwarden_certificate_renewal_timestamp_seconds{{{ISSUER}, namespace="app2", name="app2-pki"}}': f"{2 * DAY}x30",  # noqa: E501
            },
            "20m",
        ),
        Case(  # renewal overdue but far from expiry
            {
                f'pkiwarden_certificate_expiration_timestamp_seconds{{{ISSUER}, namespace="app2", name="app2-pki"}}': f"{30 * DAY}x30",  # noqa: E501
                f'pkiwarden_certificate_renewal_timestamp_seconds{{{ISSUER}, namespace="app2", name="app2-pki"}}': "0x30",  # noqa: E501
            },
            "20m",
        ),
    ],
    "PkiwardenPkiNotReady": [
        Case(
            {
                f'pkiwarden_certificate_ready_status{{{ISSUER}, namespace="app2", name="app2-pki", condition="True"}}': "0x30",  # noqa: E501
                f'pkiwarden_certificate_ready_status{{{ISSUER}, namespace="app2", name="app2-pki", condition="False"}}': "1x30",  # noqa: E501
            },
            "16m",
            [pki()],
        ),
        Case(  # not yet for 15 minutes
            {
                f'pkiwarden_certificate_ready_status{{{ISSUER}, namespace="app2", name="app2-pki", condition="True"}}': "0x30",  # noqa: E501
            },
            "10m",
        ),
        Case(
            {
                f'pkiwarden_certificate_ready_status{{{ISSUER}, namespace="app2", name="app2-pki", condition="True"}}': "1x30",  # noqa: E501
            },
            "20m",
        ),
    ],
    "PkiwardenIssuanceFailing": [
        Case(
            {
                f'pkiwarden_certificate_failed_issuance_attempts{{{ISSUER}, namespace="app2", name="app2-pki", reason="NotAllowed"}}': "1 2 3 4 5 6 7 8 9 10 11 12",  # noqa: E501
            },
            "11m",
            [pki(reason="NotAllowed")],
        ),
        Case(
            {
                f'pkiwarden_certificate_failed_issuance_attempts{{{ISSUER}, namespace="app2", name="app2-pki", reason="NotAllowed"}}': "1 2 3 4x20",  # noqa: E501
            },
            "20m",
        ),
    ],
    "PkiwardenCAExpiringSoon": [
        Case(
            {
                f'pkiwarden_ca_expiration_timestamp_seconds{{{ISSUER}, namespace="pkiwarden-system", secret="pkiwarden-ca"}}': f"{10 * DAY}x90",  # noqa: E501
            },
            "61m",
            [{"namespace": "pkiwarden-system", "secret": "pkiwarden-ca"}],
        ),
        Case(
            {
                f'pkiwarden_ca_expiration_timestamp_seconds{{{ISSUER}, namespace="pkiwarden-system", secret="pkiwarden-ca"}}': f"{60 * DAY}x90",  # noqa: E501
            },
            "61m",
        ),
    ],
    "PkiwardenWebhookDown": [
        Case(
            {f'up{{{WEBHOOK}, instance="a"}}': "0x10", f'up{{{WEBHOOK}, instance="b"}}': "0x10"},
            "6m",
            [{}],
        ),
        Case({f'up{{{ISSUER}, instance="a"}}': "1x10"}, "6m", [{}]),  # no webhook target at all
        Case(
            {f'up{{{WEBHOOK}, instance="a"}}': "0x10", f'up{{{WEBHOOK}, instance="b"}}': "1x10"},
            "6m",
        ),
    ],
    "PkiwardenWebhookErrors": [
        Case(
            {f"pkiwarden_admission_internal_errors_total{{{WEBHOOK}}}": "0 0 1 1 1"},
            "3m",
            [{"job": "pkiwarden-webhook"}],
        ),
        Case({f"pkiwarden_admission_internal_errors_total{{{WEBHOOK}}}": "0x20"}, "15m"),
    ],
    "PkiwardenWebhookCallsFailing": [
        Case(
            {
                'apiserver_admission_webhook_rejection_count{name="pkis.pkiwarden.dev", error_type="calling_webhook_error", rejection_code="0", operation="CREATE", type="validating"}': "0+1x20",  # noqa: E501
            },
            "10m",
            [{"name": "pkis.pkiwarden.dev"}],
        ),
        Case(  # a denial by the webhook is its job, not a failed call
            {
                'apiserver_admission_webhook_rejection_count{name="pkis.pkiwarden.dev", error_type="no_error", rejection_code="403", operation="CREATE", type="validating"}': "0+1x20",  # noqa: E501
            },
            "10m",
        ),
    ],
    "PkiwardenWebhookHighRejectionRate": [
        Case(
            {
                f'pkiwarden_admission_requests_total{{{WEBHOOK}, kind="Pki", operation="CREATE", allowed="false"}}': "0+60x40",  # noqa: E501
                f'pkiwarden_admission_requests_total{{{WEBHOOK}, kind="Pki", operation="CREATE", allowed="true"}}': "0+10x40",  # noqa: E501
            },
            "30m",
            [{"job": "pkiwarden-webhook"}],
        ),
        Case(  # every review denied, but one a minute is a person, not a pipeline
            {
                f'pkiwarden_admission_requests_total{{{WEBHOOK}, kind="Pki", operation="CREATE", allowed="false"}}': "0+1x40",  # noqa: E501
            },
            "30m",
        ),
        Case(
            {
                f'pkiwarden_admission_requests_total{{{WEBHOOK}, kind="Pki", operation="CREATE", allowed="false"}}': "0+10x40",  # noqa: E501
                f'pkiwarden_admission_requests_total{{{WEBHOOK}, kind="Pki", operation="CREATE", allowed="true"}}': "0+60x40",  # noqa: E501
            },
            "30m",
        ),
    ],
    "PkiwardenWebhookSlow": [
        Case(
            {
                f'pkiwarden_admission_duration_seconds_bucket{{{WEBHOOK}, le="0.5"}}': "0x30",
                f'pkiwarden_admission_duration_seconds_bucket{{{WEBHOOK}, le="1.0"}}': "0+10x30",
                f'pkiwarden_admission_duration_seconds_bucket{{{WEBHOOK}, le="+Inf"}}': "0+10x30",
            },
            "20m",
            [{"job": "pkiwarden-webhook"}],
        ),
        Case(
            {
                f'pkiwarden_admission_duration_seconds_bucket{{{WEBHOOK}, le="0.5"}}': "0+10x30",
                f'pkiwarden_admission_duration_seconds_bucket{{{WEBHOOK}, le="1.0"}}': "0+10x30",
                f'pkiwarden_admission_duration_seconds_bucket{{{WEBHOOK}, le="+Inf"}}': "0+10x30",
            },
            "20m",
        ),
    ],
    "PkiwardenIssuerNoLeader": [
        Case(
            {
                f'leader_election_master_status{{{ISSUER}, instance="a", name="pkiwarden-issuer"}}': "0x10",  # noqa: E501
                f'leader_election_master_status{{{ISSUER}, instance="b", name="pkiwarden-issuer"}}': "0x10",  # noqa: E501
            },
            "6m",
            [{}],
        ),
        Case(
            {
                f'leader_election_master_status{{{ISSUER}, instance="a", name="pkiwarden-issuer"}}': "0x10",  # noqa: E501
                f'leader_election_master_status{{{ISSUER}, instance="b", name="pkiwarden-issuer"}}': "1x10",  # noqa: E501
            },
            "6m",
        ),
    ],
}


def expand(template: str, labels: dict[str, str]) -> str:
    """The annotation as Prometheus renders it; the templates use only ``$labels``."""
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), template)


def promtool_test(alert: str, case: Case) -> dict[str, Any]:
    rule = next(a for a in alerts(Settings()) if a.alert == alert)
    expected = [
        {
            "exp_labels": {**labels, "alertname": alert, "severity": rule.severity.value},
            "exp_annotations": {
                "summary": expand(rule.summary, labels),
                "description": expand(rule.description, labels),
            },
        }
        for labels in case.fires
    ]
    return {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
        "alert_rule_test": [{"eval_time": case.at, "alertname": alert, "exp_alerts": expected}],
    }


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is not installed; it comes with Prometheus"
            " (Debian: apt-get install prometheus)",
            pytrace=False,
        )
    return found


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    assert sorted(CASES) == sorted(a.alert for a in alerts(Settings()))
    for alert, cases in CASES.items():
        assert any(case.fires for case in cases), alert
        assert any(not case.fires for case in cases), alert


@pytest.mark.parametrize("alert", sorted(CASES))
def test_alert_under_promtool(alert: str, tmp_path: Path) -> None:
    tests = {
        "rule_files": [str(RULE_FILE)],
        "evaluation_interval": "1m",
        "tests": [promtool_test(alert, case) for case in CASES[alert]],
    }
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False, width=10_000))
    result = subprocess.run(
        [promtool(), "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
