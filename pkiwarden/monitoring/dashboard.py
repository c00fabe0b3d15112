"""The Grafana dashboard, built from the same records and settings as the alerts.

Every query is plain PromQL (no Grafana-only variables inside expressions), so
a test can run each one against a real Prometheus and require data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pkiwarden.monitoring.rules import Settings, records

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WIDTH = 12
HEIGHT = 8


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # Grafana panel type: timeseries, stat, table
    queries: tuple[Query, ...]
    unit: str = "short"
    description: str = ""


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


def rows(s: Settings) -> list[Row]:
    r = records(s)
    quantiles = tuple(
        Query(
            f"histogram_quantile({q}, sum by (le) "
            f"(rate(pkiwarden_admission_duration_seconds_bucket{s.webhook()}[5m])))",
            f"p{round(q * 100)}",
        )
        for q in (0.5, 0.9, 0.99)
    )
    return [
        Row(
            "Certificates",
            (
                Panel(
                    "Certificates expiring soonest",
                    "table",
                    (Query(f"bottomk(20, {r.expiry.record} - time())", instant=True),),
                    unit="s",
                    description="Time left until notAfter, per Pki, soonest first.",
                ),
                Panel(
                    "Pkis not Ready",
                    "stat",
                    (Query(f"count({r.ready.record} == 0) or vector(0)"),),
                ),
                Panel(
                    "Not-Ready Pkis by reason",
                    "timeseries",
                    (
                        Query(
                            f"count by (reason) ({r.failures.record}"
                            f" and on (namespace, name) ({r.ready.record} == 0))",
                            "{{reason}}",
                        ),
                    ),
                    description="The Ready condition's reason (README: run-time reasons).",
                ),
                Panel(
                    "CA expires in",
                    "stat",
                    (Query(f"min({r.ca_expiry.record}) - time()"),),
                    unit="s",
                ),
                Panel(
                    "CA rotation phase",
                    "stat",
                    (Query(f"{r.ca_phase.record} == 1", "{{authority}}: {{phase}}"),),
                    description="Stable, or where a rotation stands (README: Rotating the CA).",
                ),
                Panel(
                    "CA rotation: Pkis left to re-issue",
                    "timeseries",
                    (
                        Query(f"sum({r.ca_pending.record})", "pending"),
                        Query(f"sum({r.ca_blocked.record})", "blocked"),
                    ),
                    description="Blocked Pkis keep the previous CA trusted until they are fixed.",
                ),
            ),
        ),
        Row(
            "Issuance",
            (
                Panel(
                    "Pkis failing issuance by reason",
                    "timeseries",
                    (Query(f"count by (reason) ({r.failures.record})", "{{reason}}"),),
                    description="Including Ready Pkis whose renewal is blocked.",
                ),
                Panel(
                    "Certificates issued",
                    "timeseries",
                    (
                        Query(
                            "sum by (reason) (rate(pkiwarden_events_total"
                            f"{s.issuer(type='Normal')}[5m]))",
                            "{{reason}}",
                        ),
                    ),
                    unit="ops",
                ),
                Panel(
                    "Warning Events by reason",
                    "timeseries",
                    (
                        Query(
                            "sum by (reason) (rate(pkiwarden_events_total"
                            f"{s.issuer(type='Warning')}[5m]))",
                            "{{reason}}",
                        ),
                    ),
                    unit="ops",
                    description="Failures, told to the Pki and to every Pod that uses its Secret.",
                ),
                Panel(
                    "Reconciles by result",
                    "timeseries",
                    (
                        Query(
                            "sum by (result) (rate(controller_runtime_reconcile_total"
                            f"{s.issuer()}[5m]))",
                            "{{result}}",
                        ),
                    ),
                    unit="ops",
                ),
                Panel(
                    "Work queue",
                    "timeseries",
                    (
                        Query(f"max(workqueue_depth{s.issuer()})", "depth"),
                        Query(
                            "histogram_quantile(0.99, sum by (le) "
                            f"(rate(workqueue_queue_duration_seconds_bucket{s.issuer()}[5m])))",
                            "p99 wait (s)",
                        ),
                    ),
                ),
                Panel(
                    "Issuer leader",
                    "stat",
                    (Query(f"max(leader_election_master_status{s.issuer(name=s.lease)})"),),
                    description="1 while a replica holds the leader Lease.",
                ),
            ),
        ),
        Row(
            "Admission",
            (
                Panel(
                    "Admission reviews by verdict",
                    "timeseries",
                    (
                        Query(
                            "sum by (kind, allowed) (rate(pkiwarden_admission_requests_total"
                            f"{s.webhook()}[5m]))",
                            "{{kind}} allowed={{allowed}}",
                        ),
                    ),
                    unit="reqps",
                ),
                Panel("Admission latency", "timeseries", quantiles, unit="s"),
                Panel(
                    "Share of reviews denied",
                    "timeseries",
                    (Query(r.rejection_ratio.record, "{{job}}"),),
                    unit="percentunit",
                ),
                Panel(
                    "Webhook internal errors",
                    "timeseries",
                    (
                        Query(
                            "sum(rate(pkiwarden_admission_internal_errors_total"
                            f"{s.webhook()}[5m]))",
                            "errors",
                        ),
                    ),
                    unit="ops",
                ),
                Panel(
                    "Oldest unanswered PodCertificateRequest",
                    "timeseries",
                    (
                        Query(
                            f"max(pkiwarden_pod_certificate_oldest_pending_seconds{s.issuer()})",
                            "age",
                        ),
                    ),
                    unit="s",
                    description="A Pod mounting a pkiwarden podCertificate volume waits in "
                    "ContainerCreating until its request is answered; the alert fires past "
                    f"{s.pod_certificate_wait_seconds} s.",
                ),
                Panel(
                    "Replicas up",
                    "stat",
                    (
                        Query(
                            f'sum by (job) (up{{job=~"{s.webhook_job}|{s.issuer_job}"}})',
                            "{{job}}",
                        ),
                    ),
                ),
            ),
        ),
    ]


def queries(s: Settings) -> list[str]:
    """Every expression the dashboard runs."""
    return [query.expr for row in rows(s) for panel in row.panels for query in panel.queries]


def dashboard(s: Settings) -> dict[str, Any]:
    """The Grafana dashboard JSON model (rows of panels, two panels wide)."""
    panels: list[dict[str, Any]] = []
    y = 0
    for row in rows(s):
        panels.append(
            {
                "id": len(panels) + 1,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        for index, panel in enumerate(row.panels):
            x = (index % 2) * WIDTH
            if index and x == 0:
                y += HEIGHT
            panels.append(_panel(panel, len(panels) + 1, x, y))
        y += HEIGHT
    return {
        "title": "pkiwarden",
        "uid": "pkiwarden",
        "description": "Certificates, issuance and admission of pkiwarden.",
        "tags": ["pkiwarden"],
        "editable": True,
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                }
            ]
        },
        "panels": panels,
    }


def _panel(panel: Panel, id: int, x: int, y: int) -> dict[str, Any]:
    targets = [
        {
            "datasource": DATASOURCE,
            "expr": query.expr,
            "legendFormat": query.legend,
            "instant": query.instant,
            "refId": chr(ord("A") + index),
        }
        for index, query in enumerate(panel.queries)
    ]
    return {
        "id": id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": HEIGHT, "w": WIDTH, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {},
        "targets": targets,
    }
