"""The Pod certificate controller's writes: the signed chain, the status, the trust bundles."""
