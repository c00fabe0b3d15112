"""Writing and removing Secrets with preconditions: never clobber a change we did not see."""

from __future__ import annotations

from issuer.controllers.pkis.decisions.secret_body import SecretObject
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


def delete_secret(kube: Kube, namespace: str, name: str, uid: str) -> None:
    """Delete the Secret with this uid only: a Secret re-created meanwhile is not ours to remove."""
    try:
        kube.delete(
            SECRETS.path(namespace, name),
            body={"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}},
        )
    except ApiError as error:
        if not (error.not_found or error.conflict):
            raise


def drop_owner_references(kube: Kube, namespace: str, name: str, resource_version: str) -> None:
    """Remove an earlier release's ownerReference, guarded by the version we decided on."""
    try:
        kube.patch(
            SECRETS.path(namespace, name),
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
                {"op": "remove", "path": "/metadata/ownerReferences"},
            ],
            patch_type="json",
        )
    except ApiError as error:
        if not (error.not_found or error.conflict or error.status == 422):
            raise
