"""The HTTP edge: what goes over the wire, including bodies no API server would send."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.impact import PolicyContext
from shared.logs import JsonFormatter
from shared.validation.pki import Context
from tests.unit.reviews import CONTEXT, review_body
from webhook.app import create_app


class Source:
    """A fixed context; ``synced`` decides what /readyz sees."""

    def __init__(self, synced: Mapping[str, bool] | None = None) -> None:
        self.synced = dict(synced or {"pkis": True, "pkipolicies": True})

    def context_for(self, namespace: str) -> Context:
        return CONTEXT

    def policy_context(self) -> PolicyContext:
        return PolicyContext(policies=CONTEXT.policies)

    def cache_status(self) -> Mapping[str, bool]:
        return self.synced


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Source())) as test_client:
        yield test_client


def test_valid_review_is_answered_with_the_same_uid(client: TestClient) -> None:
    reply = client.post("/validate?timeout=10s", json=review_body())
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "uid-1", "allowed": True},
    }


def test_denial_is_http_200_with_403_forbidden_inside(client: TestClient) -> None:
    reply = client.post("/validate", json=review_body({"serviceName": "app2"}))
    assert reply.status_code == 200
    response = reply.json()["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert response["status"]["reason"] == "Forbidden"
    assert response["status"]["message"].startswith('spec.serviceName: "app2" is not allowed')


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"[" * 200_000, "nested too deeply"),
        (b"[]", "not a JSON object"),
        (json.dumps({**review_body(), "apiVersion": "admission.k8s.io/v1beta1"}).encode(), "v1"),
        (json.dumps({**review_body(), "kind": "Review"}).encode(), "AdmissionReview"),
        (json.dumps(review_body(uid="")).encode(), "request.uid"),
        (json.dumps(review_body(uid=7)).encode(), "request.uid"),
        (
            json.dumps({k: v for k, v in review_body().items() if k != "request"}).encode(),
            "request",
        ),
        (json.dumps(review_body(kind="Pki")).encode(), "request.kind"),
        (json.dumps(review_body(operation=None)).encode(), "request.operation"),
        (json.dumps(review_body(dryRun="yes")).encode(), "request.dryRun"),
        (b'{"apiVersion": 1' + b"0" * 5000 + b"}", "not valid JSON"),
    ],
)
def test_not_a_review_is_400_with_a_json_reason(
    client: TestClient, body: bytes, reason: str
) -> None:
    reply = client.post("/validate", content=body)
    assert reply.status_code == 400
    assert reply.json()["error"] == "InvalidAdmissionReview"
    assert reason in reply.json()["message"]


def test_body_limit_is_counted_while_reading_not_taken_from_content_length() -> None:
    app = create_app(Source(), max_body_bytes=1000)
    body = json.dumps(review_body({"serviceName": "app1", "pad": "x" * 2000})).encode()

    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length at all
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    with TestClient(app) as limited:
        streamed = limited.post("/validate", content=chunks())
        small = limited.post("/validate", json=review_body())
    assert streamed.status_code == 400
    assert "larger than 1000 bytes" in streamed.json()["message"]
    assert small.status_code == 200


def test_default_limit_is_three_mebibytes(client: TestClient) -> None:
    padding = "x" * (3 * 1024 * 1024)
    reply = client.post("/validate", json=review_body({"serviceName": "app1", "pad": padding}))
    assert reply.status_code == 400
    assert "larger than 3145728 bytes" in reply.json()["message"]


def test_health_and_readiness() -> None:
    source = Source({"pkis": True, "secrets (metadata)": False})
    with TestClient(create_app(source)) as probe:
        assert probe.get("/healthz").status_code == 200
        waiting = probe.get("/readyz")
        assert waiting.status_code == 503
        assert waiting.json()["waitingFor"] == ["secrets (metadata)"]
        source.synced["secrets (metadata)"] = True
        assert probe.get("/readyz").status_code == 200


def test_metrics_count_decisions_warnings_and_cache_state() -> None:
    source = Source({"pkis": True, "pkipolicies": False})
    with TestClient(create_app(source)) as scraped:
        scraped.post("/validate", json=review_body())
        scraped.post("/validate", json=review_body({"serviceName": "app2"}))
        scraped.post("/validate", json=review_body({"serviceName": "app1", "renewBefore": "1h"}))
        scraped.post("/validate", content=b"nonsense")
        text = scraped.get("/metrics").text
    assert (
        'pkiwarden_admission_requests_total{allowed="true",kind="Pki",operation="CREATE"} 2.0'
        in text
    )
    assert (
        'pkiwarden_admission_requests_total{allowed="false",kind="Pki",operation="CREATE"} 1.0'
        in text
    )
    assert "pkiwarden_admission_warnings_total 1.0" in text
    assert "pkiwarden_admission_duration_seconds_count 3.0" in text
    assert "pkiwarden_admission_in_flight_requests 0.0" in text
    assert "pkiwarden_admission_invalid_requests_total 1.0" in text
    assert 'pkiwarden_cache_synced{cache="pkipolicies"} 0.0' in text
    assert 'pkiwarden_cache_synced{cache="pkis"} 1.0' in text


def test_one_json_log_line_per_decision_with_names_only(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret_looking = "do-not-log-this-value"
    with caplog.at_level(logging.INFO, logger="pkiwarden.webhook"):
        client.post("/validate", json=review_body({"serviceName": "app1", "x": secret_looking}))
    decisions = [r for r in caplog.records if r.getMessage() == "admission decision"]
    assert len(decisions) == 1
    line = JsonFormatter().format(decisions[0])
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["uid"] == "uid-1"
    assert entry["kind"] == "Pki"
    assert (entry["namespace"], entry["name"]) == ("app1", "app1-pki")
    assert entry["allowed"] is False  # "x" is not a field of a Pki
    assert isinstance(entry["duration_ms"], float)
    assert secret_looking not in line


def test_an_internal_failure_is_an_explained_denial_not_a_500() -> None:
    class Broken(Source):
        def context_for(self, namespace: str) -> Context:
            raise RuntimeError("cache exploded")

    with TestClient(create_app(Broken()), raise_server_exceptions=False) as broken:
        reply = broken.post("/validate", json=review_body())
    assert reply.status_code == 200
    response = reply.json()["response"]
    assert response["allowed"] is False
    assert response["status"]["reason"] == "InternalError"
    assert "uid-1" in response["status"]["message"]
    assert "cache exploded" not in response["status"]["message"]


# --- fuzz -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
PKI_FIELDS = [
    "serviceName", "secretName", "dnsNames", "ipAddresses", "commonName", "duration",
    "renewBefore", "privateKey", "usages", "unknown",
]  # fmt: skip
POLICY_FIELDS = [
    "namespaces", "namespaceSelector", "allowedServiceNames", "allowedDNSNames",
    "allowedIPRanges", "maxDuration", "allowedKeyAlgorithms",
]  # fmt: skip
hostile_text = st.sampled_from(
    ["", "*", "*.*", "a" * 300, "app1\n", "10.0.0.0/33", "::1%eth0", "9" * 5000, "\x00", "\ud800"]
)
values = json_values | hostile_text | st.lists(hostile_text, max_size=4)
pki_specs = st.dictionaries(st.sampled_from(PKI_FIELDS), values, max_size=6)
policy_specs = st.dictionaries(st.sampled_from(POLICY_FIELDS), values, max_size=6)


@st.composite
def mutated_reviews(draw: st.DrawFn) -> bytes:
    """A review that is right in places and hostile in others."""
    kind = draw(st.sampled_from(["Pki", "PkiPolicy", "Other"]))
    spec = draw(pki_specs if kind == "Pki" else policy_specs | json_values)
    body = review_body(
        spec,
        operation=draw(st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT", "create", ""])),
        kind={"group": "pkiwarden.dev", "version": "v1alpha1", "kind": kind},
    )
    request = body["request"]
    if draw(st.booleans()):
        request["oldObject"] = draw(st.none() | json_values | st.just(request["object"]))
    for _ in range(draw(st.integers(0, 3))):
        targets = [body, request, request.get("object"), request.get("kind")]
        target = draw(st.sampled_from([t for t in targets if isinstance(t, dict)]))
        key = draw(st.sampled_from([*target.keys(), "metadata", "extra"]))
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(values)
    return json.dumps(body).encode()


hostile_bodies = (
    mutated_reviews()
    | st.binary(max_size=200)
    | json_values.map(lambda value: json.dumps(value).encode())
    | st.text(max_size=100).map(str.encode)
    | st.integers(1, 100_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth)
)


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=hostile_bodies)
def test_hostile_bodies_get_a_review_or_400_never_5xx(client: TestClient, body: bytes) -> None:
    reply = client.post("/validate", content=body)
    assert reply.status_code in (200, 400), reply.text
    document = reply.json()
    if reply.status_code == 400:
        assert document["error"] == "InvalidAdmissionReview"
        return
    sent = json.loads(body)
    assert document["apiVersion"] == "admission.k8s.io/v1"
    assert document["kind"] == "AdmissionReview"
    response = document["response"]
    assert response["uid"] == sent["request"]["uid"]
    assert isinstance(response["allowed"], bool)
    if not response["allowed"]:
        # An internal failure would be a bug in validation, hidden behind a denial.
        assert response["status"]["code"] == 403, response["status"]
    for line in response.get("warnings", []):
        assert line.isprintable()
