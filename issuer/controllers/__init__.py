"""The issuer's controllers beside the Pki reconciler, each one job over the shared caches."""
