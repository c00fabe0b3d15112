"""What a reconcile reads: the caches that feed the work queue, the Pki's Secret, the CA."""
