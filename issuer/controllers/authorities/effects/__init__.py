"""The authority controller's writes: trust ConfigMaps and a first CA."""
