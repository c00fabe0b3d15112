"""What an authority pass reads: the PkiAuthority's spec and the state kept in its CA Secret."""
