"""The issuer's pure decisions: what to do, with which key, what Secret, status and Events say."""
