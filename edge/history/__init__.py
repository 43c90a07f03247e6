"""edge.history."""
