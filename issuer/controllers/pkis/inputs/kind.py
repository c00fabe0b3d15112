"""Is the Pki kind itself going away: the one fact that tells an uninstall from a deletion."""

from __future__ import annotations

from shared.kube.client import CRDS, ApiError, Kube

PKI_CRD = "pkis.pkiwarden.dev"


def pki_kind_stays(kube: Kube) -> bool:
    """False while the Pki CRD is being deleted or is gone.

    Deleting the CRD (an uninstall, ``kubectl delete -k deploy/``) deletes every
    Pki, and each deletion looks the same as a user's; only the CRD's
    deletionTimestamp, set before its Pkis go, tells them apart. An error
    other than NotFound is raised: the caller keeps the Secret when unsure.
    """
    try:
        crd = kube.get(CRDS.path(name=PKI_CRD))
    except ApiError as error:
        if error.not_found:
            return False
        raise
    return not (crd.get("metadata") or {}).get("deletionTimestamp")
