"""What a Pki reconcile reads: the caches that wake it, the Pki's Secret, names taken."""
