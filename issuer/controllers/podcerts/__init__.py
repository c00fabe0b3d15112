"""The signer ``pkiwarden.dev/<authority>`` for the kubelet's PodCertificateRequests.

``inputs`` (the requests, their issued certificates) -> ``decisions`` (pure:
the answer, the trust bundles, which Pods still depend on a CA) ->
``effects`` (the signed chain, the status, the ClusterTrustBundles) ->
``reporting`` (Warning Events on the Pod, metrics); ``controller`` is only
that sequence and the worker threads.
"""
