"""Who may read /metrics: the token, the TokenReview's user, the SubjectAccessReview's answer."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest
from fastapi.testclient import TestClient

from issuer.runtime.health import HealthServer
from issuer.runtime.metrics_tls import self_signed_context
from shared.clock import utc_now
from shared.metrics_access import Access, access_review, bearer_token, user_of, verdict
from tests.unit.test_webhook_http import Source
from webhook.app import create_app

SCRAPER = {
    "username": "system:serviceaccount:monitoring:prometheus-k8s",
    "uid": "u-1",
    "groups": ["system:serviceaccounts", "system:authenticated"],
}
REVIEWED = {"status": {"authenticated": True, "user": SCRAPER}}
ALLOWED = {"status": {"allowed": True}}
DENIED = {"status": {"allowed": False}}


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    ("token", "review", "decision", "status", "says"),
    [
        (None, None, None, 401, "/metrics needs a bearer token"),
        ("t", {"status": {"authenticated": False}}, None, 401, "did not accept the bearer token"),
        ("t", REVIEWED, DENIED, 403, "bind it to the ClusterRole pkiwarden-metrics-reader"),
        ("t", REVIEWED, {}, 403, "may not get /metrics"),
        ("t", REVIEWED, ALLOWED, 200, ""),
    ],
)
def test_verdict(
    token: str | None,
    review: dict[str, Any] | None,
    decision: dict[str, Any] | None,
    status: int,
    says: str,
) -> None:
    access = verdict(token, user_of(review or {}), decision)
    assert access.status == status
    assert says in access.message
    assert access.allowed is (status == 200)


def test_the_access_review_asks_for_get_on_the_metrics_path_as_that_user() -> None:
    spec = access_review(SCRAPER)["spec"]
    assert spec == {
        "user": SCRAPER["username"],
        "uid": "u-1",
        "groups": SCRAPER["groups"],
        "nonResourceAttributes": {"path": "/metrics", "verb": "get"},
    }


def _only(token: str) -> Any:
    def check(header: str | None) -> Access:
        if bearer_token(header) == token:
            return Access(200)
        return verdict(bearer_token(header), None, None)

    return check


def test_the_webhook_answers_metrics_only_when_the_check_allows_and_probes_always() -> None:
    with TestClient(create_app(Source(), metrics_access=_only("good"))) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer bad"}).status_code == 401
        good = client.get("/metrics", headers={"Authorization": "Bearer good"})
        assert good.status_code == 200 and "pkiwarden_admission" in good.text
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200


def test_the_issuer_serves_metrics_over_https_to_allowed_tokens_only() -> None:
    server = HealthServer(
        0,
        "127.0.0.1",
        tls=self_signed_context(("pkiwarden-issuer",), utc_now()),
        guard=_only("good"),
    )
    server.add_route("/metrics", lambda: (200, "text/plain", b"figures\n"))
    server.start()
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    url = f"https://127.0.0.1:{server.port}/metrics"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, context=insecure, timeout=5)
        assert refused.value.code == 401
        request = urllib.request.Request(url, headers={"Authorization": "Bearer good"})
        with urllib.request.urlopen(request, context=insecure, timeout=5) as answer:
            assert answer.read() == b"figures\n"
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # no plain HTTP there
            urllib.request.urlopen(url.replace("https", "http"), timeout=5)
    finally:
        server.stop()
