"""edge.replay."""
