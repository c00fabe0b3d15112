"""The CA as a resource: trust distribution and rotation (the PkiAuthority's controller).

``trust``, ``phases`` and ``pacing`` decide (pure, table-tested); ``state``
reads and writes the CA Secret that records where a rotation stands;
``configmaps`` publishes the trust set; ``loop`` ties them to the caches.
"""
