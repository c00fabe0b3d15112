"""Kubernetes plumbing both processes use: a small JSON client and a list+watch cache."""
