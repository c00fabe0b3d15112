"""The signer ``pkiwarden.dev/<authority>`` for the kubelet's PodCertificateRequests.

inputs (``requests``) -> pure decision (``decisions``) -> effects (``signing``,
``status``) -> reporting (``events``, ``metrics``); ``controller`` is only that
sequence and the worker threads; ``trust_bundles`` publishes the authority's
trust set as ClusterTrustBundles.
"""
