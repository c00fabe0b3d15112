"""Release tooling: the Helm chart made from ``deploy/`` and the versioned artefacts.

Development tooling like :mod:`pkiwarden.local`: it reads the product's
manifests and packaging, the product never imports it.
"""
