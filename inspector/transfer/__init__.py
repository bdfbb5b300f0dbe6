"""Explorations as files: export, import, forking copies and steps as CSV."""
