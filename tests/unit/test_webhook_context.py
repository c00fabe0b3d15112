"""The webhook's validation context over the shared caches."""

import threading
from typing import Any

from shared.findings import Severity, phrase
from shared.kube.view import ClusterView
from shared.validation.pki import Context, validate_pki
from webhook.context import ClusterViewSource

SELECTOR_POLICY: dict[str, Any] = {
    "metadata": {"name": "by-team"},
    "spec": {"namespaceSelector": {"matchLabels": {"team": "a"}}, "allowedServiceNames": ["web"]},
}
PKI: dict[str, Any] = {
    "metadata": {"name": "web", "namespace": "new"},
    "spec": {"serviceName": "web"},
}


class View:
    """What ClusterViewSource reads of a ClusterView: the namespace is not cached yet."""

    def context_for(self, namespace: str, unknown_labels_hint: str | None = None) -> Context:
        return Context(
            policies=[SELECTOR_POLICY],
            namespace_labels=None,
            other_pkis=[],
            unknown_labels_hint=unknown_labels_hint,
        )


def test_a_namespace_not_yet_cached_is_assumed_selected_with_a_warning() -> None:
    source: Any = ClusterViewSource(View())  # type: ignore[arg-type]
    findings = validate_pki(PKI, "new", source.context_for("new"))
    assert [(f.severity, phrase(f)) for f in findings] == [
        (
            Severity.WARNING,
            'metadata.namespace: "new" has labels that are not known, so it cannot be told '
            'whether it is selected by PkiPolicy "by-team" (namespaceSelector); checked as if '
            "it is; the issuer checks again before issuing",
        )
    ]


def test_the_issuer_and_other_callers_never_grant_on_a_guess() -> None:
    findings = validate_pki(PKI, "new", View().context_for("new"))
    assert [f.severity for f in findings] == [Severity.ERROR]
    assert "is not selected by any PkiPolicy" in findings[0].problem


class Listed:
    """What ClusterView reads of a watch cache: its objects, and whether it has listed."""

    def __init__(self, *names: str, synced: bool = True) -> None:
        self.objects = [{"metadata": {"name": name}} for name in names]
        self.synced = threading.Event()
        if synced:
            self.synced.set()

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.objects

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None


def view(authorities: Listed | None) -> ClusterView:
    caches: Any = {"policies": Listed(), "namespaces": Listed(), "pkis": Listed()}
    return ClusterView(**caches, authorities=authorities)  # type: ignore[arg-type]


def test_the_webhook_knows_which_authorities_exist_once_listed() -> None:
    assert view(Listed("default", "platform")).context_for("app1").authorities == frozenset(
        {"default", "platform"}
    )
    # Not listed yet, or not watched (the issuer's view): unknown, never "none exist".
    assert view(Listed("default", synced=False)).context_for("app1").authorities is None
    assert view(None).context_for("app1").authorities is None


def test_the_authorities_cache_gates_readiness_like_the_others() -> None:
    waiting = Listed(synced=False)
    assert waiting in view(waiting).caches
    assert not view(waiting).synced()
    assert len(view(None).caches) == 3
