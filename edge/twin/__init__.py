"""edge.twin."""
