"""pkiwarden's local development kit: a real control plane and pkiwarden running on it.

The demo, the end-to-end tests and the benchmarks use it; ``shared``,
``webhook`` and ``issuer`` never import it (the import contracts in
``pyproject.toml`` fail ``make lint`` if one does).

- ``controlplane``: etcd, kube-apiserver and the controllers on loopback;
- ``processes``: recorded background processes, stopped exactly;
- ``readiness``: free ports and the one wait-until-ready helper;
- ``certs``: the control plane's throw-away key material;
- ``prerequisites``: the CRDs and namespace both processes expect;
- ``webhook_process``, ``issuer_process``: the one way to start each process;
- ``install``: ``deploy/`` applied as a cluster admin would, ServiceAccount identities;
- ``cli``: ``pkiwarden local up|down``; ``demo``: ``make demo``.
"""
