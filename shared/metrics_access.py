"""Who may read ``/metrics``: the caller's token, reviewed by the API server.

As kubebuilder's metrics filter and kube-rbac-proxy do: a TokenReview says
who the bearer token belongs to, then a SubjectAccessReview asks whether that
user may ``get`` the non-resource URL ``/metrics`` (the ClusterRole
``pkiwarden-metrics-reader`` grants it). No token is 401, a token the API
server does not accept is 401, a user without the grant is 403. Answers are
remembered for a minute per token, so a scrape every 30 s costs two API
requests a minute per scraper, and a revoked grant stops within a minute.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3

from shared.kube.client import ApiError, Kube

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
METRICS_PATH = "/metrics"
_REMEMBERED = 1024  # tokens whose answer is kept; past it the memory starts afresh


@dataclass(frozen=True)
class Access:
    """The answer to one scrape: the HTTP status and, when refused, why."""

    status: int
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == 200


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def user_of(token_review: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The authenticated user of a TokenReview's answer, or None."""
    status = token_review.get("status") or {}
    if not status.get("authenticated"):
        return None
    user = status.get("user") or {}
    return user if user.get("username") else None


def access_review(user: Mapping[str, Any], path: str = METRICS_PATH) -> dict[str, Any]:
    """The SubjectAccessReview asking whether ``user`` may ``get`` ``path``."""
    spec: dict[str, Any] = {
        "user": user.get("username"),
        "groups": list(user.get("groups") or []),
        "nonResourceAttributes": {"path": path, "verb": "get"},
    }
    if user.get("uid"):
        spec["uid"] = user["uid"]
    if user.get("extra"):
        spec["extra"] = dict(user["extra"])
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


def verdict(
    token: str | None,
    user: Mapping[str, Any] | None,
    decision: Mapping[str, Any] | None,
    path: str = METRICS_PATH,
) -> Access:
    """401 without a token or for one not accepted, 403 without the grant, else 200."""
    if token is None:
        return Access(401, f"{path} needs a bearer token (Authorization: Bearer ...)")
    if user is None:
        return Access(401, "the API server did not accept the bearer token")
    status = (decision or {}).get("status") or {}
    if not status.get("allowed"):
        return Access(
            403,
            f'user "{user.get("username")}" may not get {path}; bind it to the ClusterRole'
            " pkiwarden-metrics-reader",
        )
    return Access(200)


class MetricsAccess:
    """Checks a scrape's Authorization header; thread-safe, answers remembered per token."""

    def __init__(
        self,
        kube: Kube,
        path: str = METRICS_PATH,
        remember_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._path = path
        self._remember = remember_seconds
        self._clock = clock
        self._answers: dict[str, tuple[float, Access]] = {}
        self._lock = threading.Lock()

    def check(self, authorization: str | None) -> Access:
        token = bearer_token(authorization)
        if token is None:
            return verdict(None, None, None, self._path)
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self._clock()
        with self._lock:
            remembered = self._answers.get(key)
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        try:
            answer = self._review(token)
        except (
            ApiError,
            OSError,
            urllib3.exceptions.HTTPError,
        ) as error:  # not remembered: asked again at the next scrape
            return Access(503, f"cannot check access to {self._path}: {error}")
        with self._lock:
            if len(self._answers) >= _REMEMBERED:
                self._answers.clear()
            self._answers[key] = (now + self._remember, answer)
        return answer

    def _review(self, token: str) -> Access:
        review = self._kube.create(
            TOKEN_REVIEWS,
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": token},
            },
        )
        user = user_of(review)
        if user is None:
            return verdict(token, None, None, self._path)
        decision = self._kube.create(ACCESS_REVIEWS, access_review(user, self._path))
        return verdict(token, user, decision, self._path)
