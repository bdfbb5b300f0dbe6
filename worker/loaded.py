"""The models this worker process holds: one ModelRegistry, and one Stepper and ModelScheduler
per model, each made on first use (never at import time); loading, warming up, publishing to
the web processes that a model is loaded, and freeing the models that left the catalog."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time

import torch

from engine import jit_cache
from engine.heads import prepare_head_maps
from engine.loading import LoadedModel, ModelRegistry, Progress, build_catalog
from engine.stepping import Stepper
from engine.types import EngineError
from inspector.protocol import LOADED_KEY
from worker.scheduler import ModelScheduler

_registry: ModelRegistry | None = None
_registry_lock = threading.Lock()
_steppers: dict[str, Stepper] = {}
_schedulers: dict[str, ModelScheduler] = {}
logger = logging.getLogger(__name__)
LOADED_TTL_SECONDS = 600


_published_at: dict[str, float] = {}
PUBLISH_EVERY_SECONDS = 60


def _publish_loaded(loaded: LoadedModel) -> None:
    """Tell the web processes (through the shared cache) that a worker holds this model: when
    it loads, then at most once a minute while it is used (the entry lives 10 minutes)."""
    from django.core.cache import cache

    now = time.monotonic()
    if now - _published_at.get(loaded.spec.key, -math.inf) < PUBLISH_EVERY_SECONDS:
        return
    _published_at[loaded.spec.key] = now
    # The cache is advisory: never fail a task because it is unreachable.
    with contextlib.suppress(Exception):
        cache.set(
            LOADED_KEY.format(key=loaded.spec.key),
            {"info": loaded.info.to_dict(), "worker": f"{socket.gethostname()}:{os.getpid()}"},
            timeout=LOADED_TTL_SECONDS,
        )


def _added_spec(key: str):
    """A model added from the Models page (inspector.catalog), once it is ready: what a worker
    started before it was added learns of it by."""
    from inspector.models import CatalogModel

    entry = CatalogModel.objects.ready().filter(key=key).first()
    return entry.spec if entry is not None else None


def registry() -> ModelRegistry:
    """This process's models, created on first use from the Django settings."""
    global _registry
    from django.conf import settings

    catalog = build_catalog(settings.TOKENLENS_EXTRA_MODELS)
    with _registry_lock:
        if _registry is None:
            torch.set_num_threads(settings.TOKENLENS_TORCH_THREADS)
            jit_cache.keep_compiled_code(settings.TOKENLENS_NUMBA_CACHE)
            _registry = ModelRegistry(
                catalog,
                settings.TOKENLENS_MODEL_CACHE,
                settings.TOKENLENS_DEVICE,
                on_loaded=_publish_loaded,
                lookup=_added_spec,
            )
        _registry.catalog = catalog  # models added to the catalog since start-up
    return _registry


def loaded_model(key: str, progress: Progress | None = None) -> LoadedModel:
    loaded = registry().get(key, progress)
    _publish_loaded(loaded)
    return loaded


def warm_up(models: list[str]) -> None:
    """Load `models` and UMAP's code (head maps) before anyone asks: the first request after a
    start then costs what any other does. A failure is only logged: the request that needs
    the model will say what is wrong."""
    for key in models:
        started = time.monotonic()
        try:
            loaded_model(key)
        except EngineError as error:
            logger.warning("Warm-up: could not load %s: %s", key, error)
            continue
        logger.info("Warm-up: %s loaded in %.1f s", key, time.monotonic() - started)
    started = time.monotonic()
    prepare_head_maps()
    logger.info("Warm-up: head maps ready in %.1f s", time.monotonic() - started)


def stepper(key: str, progress: Progress | None = None) -> Stepper:
    """This process's Stepper for a model (its key/value caches live as long as the worker)."""
    from django.conf import settings

    loaded = loaded_model(key, progress)
    with _registry_lock:
        if key not in _steppers or _steppers[key].loaded is not loaded:  # new, or reloaded
            _steppers[key] = Stepper(loaded, settings.TOKENLENS_KV_CACHE_MB * 2**20)
        return _steppers[key]


def scheduler(key: str, progress: Progress | None = None) -> ModelScheduler:
    """This process's scheduler for a model: the one thread that runs its forward passes."""
    model_stepper = stepper(key, progress)
    with _registry_lock:
        previous = _schedulers.get(key)
        if previous is None or previous.stepper is not model_stepper:
            if previous is not None:
                previous.close()  # its model was loaded again from elsewhere
            _schedulers[key] = ModelScheduler(model_stepper)
        return _schedulers[key]


def drop_stale_models() -> list[str]:
    """Free the models this process holds that the catalog no longer names as they were
    loaded (removed from the Models page, or added again from another folder): their
    weights, key/value caches and scheduler thread. Asked at every heartbeat."""
    if _registry is None:
        return []
    stale = registry().stale_keys()
    for key in stale:
        registry().drop(key)
        with _registry_lock:
            _steppers.pop(key, None)
            previous = _schedulers.pop(key, None)
        if previous is not None:
            previous.close()
        logger.info("Dropped %s: it left the catalog or moved", key)
    return stale


def on_the_model(key: str, run, progress: Progress | None = None):
    """run(loaded) on the model's own thread, between two passes (an analysis's turn)."""
    model_scheduler = scheduler(key, progress)
    return model_scheduler.analysis(lambda _yield: run(model_scheduler.stepper.loaded)).result()
