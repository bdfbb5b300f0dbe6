"""Model loading and all tensor work, framework-free: no Django, Celery or Channels (an
import-linter contract, run by `make test`, keeps it so). Results are typed dataclasses."""
