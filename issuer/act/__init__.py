"""The issuer's writes, each thin: the Secret, the Pki's status, a development CA."""
