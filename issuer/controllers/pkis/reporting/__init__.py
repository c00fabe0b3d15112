"""Telling people about Pkis: reason codes, the PkiRecorder seam, Events on the Pki and its Pods."""
