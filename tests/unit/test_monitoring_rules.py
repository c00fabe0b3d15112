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
ISSUER = "pkiwarden-issuer"
WEBHOOK = "pkiwarden-webhook"
DAY = 86400


@dataclass(frozen=True)
class Case:
    """Input series, and the alerts (by their labels) expected at ``at``."""

    series: dict[str, str]
    at: str
    fires: list[dict[str, str]] = field(default_factory=list)


def series(metric: str, job: str | None = ISSUER, **labels: str) -> str:
    """A series in promtool's notation; ``job`` as the scrape config names it."""
    labels = {"job": job, **labels} if job else labels
    return metric + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


APP2 = {"namespace": "app2", "name": "app2-pki"}
EXPIRY = "pkiwarden_certificate_expiration_timestamp_seconds"
RENEWAL = "pkiwarden_certificate_renewal_timestamp_seconds"
READY = "pkiwarden_certificate_ready_status"
FAILURES = "pkiwarden_certificate_failed_issuance_attempts"
CA = {"authority": "default"}
CA_EXPIRY = "pkiwarden_ca_expiration_timestamp_seconds"
CA_PHASE = "pkiwarden_ca_rotation_phase"
CA_START = "pkiwarden_ca_rotation_phase_start_timestamp_seconds"
CA_BLOCKED = "pkiwarden_ca_blocked_reissue"
ERRORS = "pkiwarden_admission_internal_errors_total"
REVIEWS = "pkiwarden_admission_requests_total"
LATENCY = "pkiwarden_admission_duration_seconds_bucket"
LEADER = "leader_election_master_status"
PENDING = "pkiwarden_pod_certificate_oldest_pending_seconds"
CALLS = "apiserver_admission_webhook_rejection_count"
CALL = {"name": "pkis.pkiwarden.dev", "operation": "CREATE", "type": "validating"}


def reviews(allowed: str) -> str:
    return series(REVIEWS, WEBHOOK, kind="Pki", operation="CREATE", allowed=allowed)


CASES: dict[str, list[Case]] = {
    "PkiwardenCertificateExpiringSoon": [
        Case(  # two issuer replicas export the same Pki: one alert
            {
                series(EXPIRY, instance="a", **APP2): f"{3 * DAY}x30",
                series(EXPIRY, instance="b", **APP2): f"{3 * DAY}x30",
                series(RENEWAL, instance="a", **APP2): "0x30",
            },
            "20m",
            [APP2],
        ),
        Case(  # renewal not due yet (renewBefore shorter than the threshold)
            {series(EXPIRY, **APP2): f"{3 * DAY}x30", series(RENEWAL, **APP2): f"{2 * DAY}x30"},
            "20m",
        ),
        Case(  # renewal overdue but far from expiry
            {series(EXPIRY, **APP2): f"{30 * DAY}x30", series(RENEWAL, **APP2): "0x30"},
            "20m",
        ),
    ],
    "PkiwardenPkiNotReady": [
        Case(
            {
                series(READY, condition="True", **APP2): "0x30",
                series(READY, condition="False", **APP2): "1x30",
            },
            "16m",
            [APP2],
        ),
        Case({series(READY, condition="True", **APP2): "0x30"}, "10m"),  # not for 15m yet
        Case({series(READY, condition="True", **APP2): "1x30"}, "20m"),
    ],
    "PkiwardenIssuanceFailing": [
        Case(
            {series(FAILURES, reason="NotAllowed", **APP2): "1+1x12"},
            "11m",
            [{**APP2, "reason": "NotAllowed"}],
        ),
        Case({series(FAILURES, reason="NotAllowed", **APP2): "1 2 3 4x20"}, "20m"),
    ],
    "PkiwardenCAExpiringSoon": [
        Case({series(CA_EXPIRY, **CA): f"{10 * DAY}x90"}, "61m", [CA]),
        Case({series(CA_EXPIRY, **CA): f"{60 * DAY}x90"}, "61m"),
        Case({series(CA_EXPIRY, **CA): f"{10 * DAY}x30"}, "20m"),  # not for an hour yet
    ],
    "PkiwardenCARotationBlocked": [
        Case({series(CA_BLOCKED, **CA): "0x5 1x40"}, "40m", [CA]),
        Case({series(CA_BLOCKED, **CA): "0x5 1x40"}, "30m"),  # blocked for 25 minutes
        Case({series(CA_BLOCKED, **CA): "0x5 2x10 0x30"}, "40m"),  # the Pkis were fixed
    ],
    "PkiwardenCARotationStuck": [
        # The phase began at 0 (the CA Secret's record). Series are per minute.
        Case(  # the leader changes half-way: still one rotation, one alert
            {
                series(CA_PHASE, instance="a", phase="Reissuing", **CA): "1x180",
                series(CA_START, instance="a", **CA): "0.001x180",
                series(CA_PHASE, instance="b", phase="Reissuing", **CA): "_x180 1x200",
                series(CA_PHASE, instance="b", phase="Stable", **CA): "_x180 0x200",
                series(CA_START, instance="b", **CA): "_x180 0.001x200",
                series(CA_BLOCKED, instance="b", **CA): "_x180 0x200",
            },
            "6h15m",
            [{**CA, "phase": "Reissuing"}],
        ),
        Case(  # the issuer was down for hours: the phase's age is its own, not the scrapes'
            {
                series(CA_PHASE, phase="Propagating", **CA): "1x10 _x340 1x30",
                series(CA_START, **CA): "0.001x10 _x340 0.001x30",
            },
            "6h15m",
            [{**CA, "phase": "Propagating"}],
        ),
        Case(  # ... and not before six hours in the phase (the old `for: 6h` fired at 11h51m)
            {
                series(CA_PHASE, phase="Propagating", **CA): "1x10 _x340 1x30",
                series(CA_START, **CA): "0.001x10 _x340 0.001x30",
            },
            "5h55m",
        ),
        Case(  # each phase took its time, and the rotation finished
            {
                series(CA_PHASE, phase="Propagating", **CA): "1x120 0x300",
                series(CA_PHASE, phase="Reissuing", **CA): "0x120 1x120 0x180",
                series(CA_PHASE, phase="Retiring", **CA): "0x240 1x60 0x120",
                series(CA_PHASE, phase="Stable", **CA): "0x300 1x120",
                series(CA_START, **CA): "0.001x120 7200x120 14400x60 18000x120",
            },
            "7h",
        ),
        Case(  # a phase entered five hours in has not been stuck for six
            {
                series(CA_PHASE, phase="Retiring", **CA): "1x420",
                series(CA_START, **CA): f"{5 * 3600}x420",
            },
            "7h",
        ),
        Case(  # blocked Pkis hold it in Reissuing: PkiwardenCARotationBlocked says so
            {
                series(CA_PHASE, phase="Reissuing", **CA): "1x420",
                series(CA_START, **CA): "0.001x420",
                series(CA_BLOCKED, **CA): "1x420",
            },
            "6h5m",
        ),
        Case(
            {series(CA_PHASE, phase="Stable", **CA): "1x420", series(CA_START, **CA): "0x420"},
            "6h5m",
        ),
    ],
    "PkiwardenWebhookDown": [
        Case(
            {
                series("up", WEBHOOK, instance="a"): "0x10",
                series("up", WEBHOOK, instance="b"): "0x10",
            },
            "6m",
            [{}],
        ),
        Case({series("up", instance="a"): "1x10"}, "6m", [{}]),  # no webhook target at all
        Case(
            {
                series("up", WEBHOOK, instance="a"): "0x10",
                series("up", WEBHOOK, instance="b"): "1x10",
            },
            "6m",
        ),
    ],
    "PkiwardenWebhookErrors": [
        Case({series(ERRORS, WEBHOOK): "0 0 1 1 1"}, "3m", [{"job": WEBHOOK}]),
        Case({series(ERRORS, WEBHOOK): "0x20"}, "15m"),
    ],
    "PkiwardenWebhookCallsFailing": [
        Case(
            {series(CALLS, None, error_type="calling_webhook_error", **CALL): "0+1x20"},
            "10m",
            [{"name": "pkis.pkiwarden.dev"}],
        ),
        # A denial by the webhook is its job, not a failed call.
        Case({series(CALLS, None, error_type="no_error", **CALL): "0+1x20"}, "10m"),
    ],
    "PkiwardenWebhookHighRejectionRate": [
        Case({reviews("false"): "0+60x40", reviews("true"): "0+10x40"}, "30m", [{"job": WEBHOOK}]),
        # Every review denied, but one a minute is a person, not a pipeline.
        Case({reviews("false"): "0+1x40"}, "30m"),
        Case({reviews("false"): "0+10x40", reviews("true"): "0+60x40"}, "30m"),
    ],
    "PkiwardenWebhookSlow": [
        Case(
            {
                series(LATENCY, WEBHOOK, le="0.5"): "0x30",
                series(LATENCY, WEBHOOK, le="1.0"): "0+10x30",
                series(LATENCY, WEBHOOK, le="+Inf"): "0+10x30",
            },
            "20m",
            [{"job": WEBHOOK}],
        ),
        Case(
            {
                series(LATENCY, WEBHOOK, le="0.5"): "0+10x30",
                series(LATENCY, WEBHOOK, le="1.0"): "0+10x30",
                series(LATENCY, WEBHOOK, le="+Inf"): "0+10x30",
            },
            "20m",
        ),
    ],
    "PkiwardenPodCertificateSignerNotAnswering": [
        Case(
            {
                series(PENDING, instance="a"): "0+60x10",  # waiting ever longer
                series(PENDING, instance="b"): "0x10",
            },
            "8m",
            [{}],
        ),
        Case({series(PENDING, instance="a"): "0 60 120 0 60 120 0 60 120 0"}, "8m"),
    ],
    "PkiwardenIssuerNoLeader": [
        Case(
            {
                series(LEADER, instance="a", name="pkiwarden-issuer"): "0x10",
                series(LEADER, instance="b", name="pkiwarden-issuer"): "0x10",
            },
            "6m",
            [{}],
        ),
        Case(
            {
                series(LEADER, instance="a", name="pkiwarden-issuer"): "0x10",
                series(LEADER, instance="b", name="pkiwarden-issuer"): "1x10",
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
