"""Model loading and all tensor work. Importable without Django (except engine.tasks)."""
