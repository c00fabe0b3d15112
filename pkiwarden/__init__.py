"""The ``pkiwarden`` command line: lint, the local control plane, and the two servers."""
