"""The authority controller's pure decisions: phases, the trust set, re-issue order, status."""
