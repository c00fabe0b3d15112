"""Writing Events: the correlator (aggregation, de-duplication, spam filter) and the recorder."""
