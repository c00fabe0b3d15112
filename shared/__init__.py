"""What the webhook and the issuer both need, once.

Schema, validation, policy matching, and the Kubernetes plumbing.
"""

API_GROUP = "pkiwarden.dev"
API_VERSION = "v1alpha1"
API_GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "pkiwarden"
PKI_LABEL = "pkiwarden.dev/pki"
