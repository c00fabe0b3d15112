"""The webhook's validation context over the shared caches."""

from typing import Any

from shared.findings import Severity, phrase
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
