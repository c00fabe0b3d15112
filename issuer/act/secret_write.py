"""Writing the Secret with optimistic concurrency: never clobber a change we did not see."""

from __future__ import annotations

from issuer.decide.secret_body import SecretObject
from shared.kube.client import SECRETS, ApiError, Kube


class WriteConflictError(Exception):
    """Someone changed or created the Secret since we read it; reconcile again."""


def write_secret(kube: Kube, body: SecretObject, *, exists: bool) -> SecretObject:
    """Create or replace with optimistic concurrency: never clobber a change we did not see.

    Create fails with 409 if the Secret appeared meanwhile; replace carries the
    resourceVersion we read and fails with 409 if it moved on.
    """
    metadata = body["metadata"]
    try:
        if exists:
            return kube.replace(SECRETS.path(metadata["namespace"], metadata["name"]), body)
        return kube.create(SECRETS.path(metadata["namespace"]), body)
    except ApiError as error:
        if error.conflict:
            raise WriteConflictError(str(error)) from error
        raise
