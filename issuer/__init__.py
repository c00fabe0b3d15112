"""The issuer: turns accepted Pkis into kubernetes.io/tls Secrets and reports what went wrong."""
