"""manage.py prepare_models: convert the packaged GGUF models into the model cache, and compile
the head map's code into numba's cache there (each once)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from engine import jit_cache
from engine.loading import PACKAGED_MODELS, is_prepared, prepare
from engine.types import ModelLoadError


class Command(BaseCommand):
    help = "Convert the packaged GGUF models once into the model cache (idempotent)."

    def add_arguments(self, parser):
        keys = ", ".join(spec.key for spec in PACKAGED_MODELS)
        parser.add_argument("keys", nargs="*", help=f"some of: {keys} (default: all)")

    def handle(self, *args, keys, **options):
        cache_root = settings.TOKENLENS_MODEL_CACHE
        unknown = set(keys) - {spec.key for spec in PACKAGED_MODELS}
        if unknown:
            raise CommandError(f"Not a packaged model: {', '.join(sorted(unknown))}")
        for spec in PACKAGED_MODELS:
            if keys and spec.key not in keys:
                continue
            if is_prepared(spec, cache_root):
                self.stdout.write(f"{spec.label}: ready in {cache_root / spec.key}")
                continue
            try:
                folder = prepare(spec, cache_root, lambda stage: self.stdout.write(f"  {stage}"))
            except ModelLoadError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(self.style.SUCCESS(f"{spec.label}: converted into {folder}"))
        if not keys:
            self._warm_head_maps(settings.TOKENLENS_NUMBA_CACHE)

    def _warm_head_maps(self, folder):
        """The first head map in a new worker then costs about what a warm one does."""
        if jit_cache.warm_head_maps(folder):
            self.stdout.write(self.style.SUCCESS(f"Head maps: UMAP compiled into {folder}"))
        else:
            self.stdout.write(f"Head maps: compiled code ready in {folder}")
