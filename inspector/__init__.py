"""The web side: one Django app (label `inspector`), a package per feature; see ARCHITECTURE.md."""
