"""deploy/monitoring/ is what the generator writes, and its pieces agree with each other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from pkiwarden.monitoring import manifests
from pkiwarden.monitoring.__main__ import main
from pkiwarden.monitoring.dashboard import queries
from pkiwarden.monitoring.rules import Settings, alerts, groups, short
from webhook.settings import CertificateSettings

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((MONITORING / name).read_text()) if d]


def test_committed_files_are_the_generated_ones() -> None:
    for relative, content in manifests.files().items():
        committed = MONITORING / relative
        assert committed.exists(), f"{committed} is missing; run make monitoring"
        assert committed.read_text() == content, f"{committed} is stale; run make monitoring"


def test_the_command_writes_every_file(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 0
    for relative, content in manifests.files().items():
        assert (tmp_path / relative).read_text() == content


def test_operator_and_plain_rules_are_the_same_groups() -> None:
    rule = yaml.safe_load((MONITORING / manifests.PROMETHEUS_RULE).read_text())
    plain = yaml.safe_load((MONITORING / manifests.RULE_FILE).read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == plain["groups"] == groups(Settings())


def test_scrape_jobs_are_the_services_the_rules_select() -> None:
    """prometheus-operator names a ServiceMonitor's job after the Service it selects."""
    settings = Settings()
    services = {
        d["metadata"]["name"]: d["metadata"]["labels"]
        for d in [*documents("servicemonitors.yaml"), *documents("webhook-service-labels.yaml")]
        if d["kind"] == "Service"
    }
    monitors = [d for d in documents("servicemonitors.yaml") if d["kind"] == "ServiceMonitor"]
    jobs = set()
    for monitor in monitors:
        selector = monitor["spec"]["selector"]["matchLabels"]
        (job,) = [name for name, labels in services.items() if selector.items() <= labels.items()]
        jobs.add(job)
    assert jobs == {settings.webhook_job, settings.issuer_job}


def test_scrapers_trust_a_certificate_and_read_no_secret() -> None:
    """A ServiceMonitor that names a Secret lets Prometheus read it, key and all."""
    monitors = [d for d in documents("servicemonitors.yaml") if d["kind"] == "ServiceMonitor"]
    text = (MONITORING / "servicemonitors.yaml").read_text()
    assert "secret:" not in text
    (webhook,) = [m for m in monitors if m["metadata"]["name"] == "pkiwarden-webhook"]
    (endpoint,) = webhook["spec"]["endpoints"]
    assert endpoint["tlsConfig"]["ca"] == {
        "configMap": {"name": CertificateSettings().ca_config_map, "key": "ca.crt"}
    }


def test_short_settings_change_only_the_pending_durations() -> None:
    normal, quick = groups(Settings()), groups(short(Settings(), "2s"))
    for before, after in zip(normal, quick, strict=True):
        for old, new in zip(before["rules"], after["rules"], strict=True):
            if "alert" in old:
                assert new.get("for") == "2s"
            assert {k: v for k, v in old.items() if k != "for"} == {
                k: v for k, v in new.items() if k != "for"
            }


def test_dashboard_queries_are_its_panels_targets() -> None:
    board = json.loads((MONITORING / manifests.DASHBOARD).read_text())
    targets = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert targets == queries(Settings())
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])


def test_the_readme_runbook_covers_every_alert() -> None:
    readme = (MONITORING.parents[1] / "README.md").read_text()
    section = readme[readme.index("## Monitoring") :]
    section = section[: section.index("\n## ", 1)]
    for alert in alerts(Settings()):
        assert f"| `{alert.alert}` |" in section, alert.alert
