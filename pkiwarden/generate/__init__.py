"""Build-time rendering from the one schema: the CRDs and the README's API tables.

Development tooling like :mod:`pkiwarden.release`: ``make crds`` and ``make
docs`` run it and tests check its output has not drifted; neither process
of the product imports it.
"""
