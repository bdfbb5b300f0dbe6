"""Adding a model to the catalog, in the worker that took the job: admit it (engine.admission:
found, read, checked, loaded, each stage on the page), fill in its card and mark it ready, or
delete the entry so that nothing half-added stays. The loaded model is kept where this worker
will serve it (the first request for it here does not load it again), freed otherwise."""

from __future__ import annotations

import logging

from django.conf import settings

from engine.admission import admit
from engine.loading import Progress, pick_device
from engine.types import EngineError, ModelLoadError
from inspector.compute import heartbeat, routing
from inspector.models import CatalogModel
from worker.loaded import registry

logger = logging.getLogger(__name__)
REMOVED = "This model was removed from the catalog before it was ready"


def add_model(params: dict, progress: Progress) -> dict:
    """Run an add_model job (params["entry"]: the CatalogModel's id): {"result": {"key",
    "card"}} or {"error": {"field", "message"}}, the entry deleted on any failure."""
    entry = CatalogModel.objects.filter(pk=params["entry"]).first()
    if entry is None:
        return {"error": ModelLoadError(REMOVED).to_dict()}
    try:
        loaded = admit(entry.spec, pick_device(settings.TOKENLENS_DEVICE), progress)
        if not entry.mark_ready(loaded.info.to_dict()):
            raise ModelLoadError(REMOVED)
    except Exception as exc:  # a cancel, a crash: nothing half-added stays
        CatalogModel.objects.filter(pk=entry.pk, status=CatalogModel.Status.ADDING).delete()
        if not isinstance(exc, EngineError):
            raise
        logger.info("Could not add %s: %s", entry.reference, exc.message)
        return {"error": {**exc.to_dict(), "field": "reference"}}
    if entry.key in routing.served_models():  # a worker pinned to other models never uses it
        registry().adopt(loaded)
        heartbeat.beat_soon()
    entry.refresh_from_db()
    return {"result": {"key": entry.key, "card": entry.card()}}
