"""The Pod certificate controller's pure decisions: the answer, the trust bundles, who depends."""
