"""The Pki controller's pure decisions: what to do, with which key, the Secret, status, Events."""
