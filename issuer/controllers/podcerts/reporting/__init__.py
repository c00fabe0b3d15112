"""Telling people about Pod certificates: Warning Events on the Pod, and metrics."""
