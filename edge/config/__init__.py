"""edge.config."""
