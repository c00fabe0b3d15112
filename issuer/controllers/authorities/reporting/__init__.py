"""What the authority controller tells: the CA's gauges."""
