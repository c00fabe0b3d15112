"""The Pki controller's writes, each thin: the Secret and the Pki's status."""
