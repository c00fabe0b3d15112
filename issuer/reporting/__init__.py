"""Telling people: reason codes, the Reporter seam, Events on the Pki and on its consuming Pods."""
