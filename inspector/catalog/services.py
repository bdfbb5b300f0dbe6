"""Adding models to the catalog and removing them: use-cases shared by the Models page and
the API. Admins only (access.may_manage_models).

Adding saves the entry as "adding" and a Job that a worker runs (worker.catalog): it finds
the folder or hub id, loads it with its progress on the page, checks it, fills in its card and
marks it ready, and everyone's catalog has it from then on (compute.services.catalog). A
failure deletes the entry: nothing half-added stays, and the job keeps the message.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from django.db import IntegrityError, transaction

from engine.catalog import spec_for
from engine.types import ModelSpec
from inspector import broadcast
from inspector.accounts import access, audit
from inspector.compute import dispatch, routing
from inspector.compute import services as compute
from inspector.errors import REDIS_DOWN, ServiceError
from inspector.models import CatalogModel, Exploration, Job
from inspector.protocol import TASK_RUN_JOB

logger = logging.getLogger(__name__)
ADMINS_ONLY = "Only admins add models to the catalog or remove them"
REFERENCE_MAX = 500
# A Hugging Face id: "name" or "owner/name", letters, digits, "-", "_", "." (no "--", no "..").
HUB_ID = re.compile(r"^(?!.*(--|\.\.))[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?$")
NO_WORKER_FOR_ADDED = (
    "Every running worker serves only the models its MODELS= names (TOKENLENS_WORKER_MODELS), "
    "so none would serve {key} once added. Start a worker that serves every catalog model "
    "(`make worker`, without MODELS=) or one with `make worker MODELS={key}`, then add it "
    "again; nothing was added."
)
NOT_A_REFERENCE = (
    "Give a Hugging Face id (such as HuggingFaceTB/SmolLM2-360M) or the absolute path of a "
    "folder on the worker's machine (such as /srv/models/my-model)"
)


def require_admin(request) -> None:
    if not access.may_manage_models(access.user_of(request)):
        raise ServiceError(ADMINS_ONLY, field="reference", status=403)


def parse_reference(text: str) -> ModelSpec:
    """The catalog entry a reference names: an absolute folder (~ expanded) or a hub id."""
    reference = text.strip()
    if not reference:
        raise ServiceError(NOT_A_REFERENCE, field="reference")
    if len(reference) > REFERENCE_MAX:
        raise ServiceError(f"A reference is at most {REFERENCE_MAX} characters", "reference")
    if reference.startswith(("/", "~")):
        folder = Path(reference).expanduser()
        if not folder.is_absolute() or "\0" in reference:
            raise ServiceError(NOT_A_REFERENCE, field="reference")
        return _fits(spec_for(str(folder)))
    if reference.startswith(".") or not HUB_ID.match(reference):
        raise ServiceError(NOT_A_REFERENCE, field="reference")
    return _fits(spec_for(reference))


def _fits(spec: ModelSpec) -> ModelSpec:
    """The key and the label (a folder's name may be 255 characters long) fit their columns."""
    for name, value in (("key", spec.key), ("label", spec.label)):
        longest = CatalogModel._meta.get_field(name).max_length
        if len(value) > longest:
            raise ServiceError(
                f"The name {spec.label[:40]}… is too long: a catalog {name} is at most "
                f"{longest} characters ({len(value)} here). Rename the folder, then add it",
                field="reference",
            )
    return spec


def _refuse_taken(spec: ModelSpec) -> None:
    """409 when the catalog (or an entry being added) already has this key or reference."""
    CatalogModel.objects.abandoned().delete()
    present = compute.catalog().get(spec.key)
    if present is not None and not CatalogModel.objects.filter(key=spec.key).exists():
        message = f"{present.label} is already in the catalog (as {spec.key})"
        raise ServiceError(message, field="reference", status=409)
    _refuse_stored(spec)


def _refuse_stored(spec: ModelSpec) -> None:
    entry = CatalogModel.objects.filter(key=spec.key).first() or (
        CatalogModel.objects.filter(reference=spec.location).first()
    )
    if entry is None:
        return
    if entry.status == CatalogModel.Status.ADDING:
        message = f"{entry.reference} is being added already (as {entry.key}); wait for it"
    elif entry.reference == spec.location:
        message = f"{entry.reference} is already in the catalog (as {entry.key})"
    else:  # two folders of one name, say
        message = f"The catalog key {entry.key} is taken by {entry.reference}"
    raise ServiceError(message, field="reference", status=409)


def add(request, reference: str, page_id=None) -> CatalogModel:
    """Save the entry as "adding" and queue the job that adds it (its progress goes to
    page_id, a page this session opened). 400 for a malformed reference, 409 when the catalog
    has it already, 503 with nothing saved when no worker could take it."""
    require_admin(request)
    spec = parse_reference(reference)
    _refuse_taken(spec)
    _require_worker_for(spec)
    try:
        with transaction.atomic():
            entry = CatalogModel.objects.create(
                key=spec.key,
                reference=spec.location,
                label=spec.label,
                source=spec.source,
                added_by=access.user_of(request),
            )
            entry.job = Job.objects.create(
                kind=Job.Kind.ADD_MODEL,
                model_key=spec.key,
                params={"entry": entry.pk, "reference": spec.location},
                page_id=page_id,
                session_key=access.principal(request),
                stage="Waiting for a worker",
            )
            entry.save(update_fields=["job"])
    except IntegrityError as exc:  # another admin added it a moment ago
        _refuse_stored(spec)
        message = f"{spec.location} was just added by someone else"
        raise ServiceError(message, "reference", 409) from exc
    audit.record(request, "model.add", entry, f"Asked to add {entry.reference}", key=entry.key)
    transaction.on_commit(lambda: _dispatch(entry.job))
    return entry


def _require_worker_for(spec: ModelSpec) -> None:
    """503 with nothing saved when no live worker would serve the model once added (every one
    pinned to other models by TOKENLENS_WORKER_MODELS): refused at once, rather than added to
    a catalog where nothing could compute with it."""
    dispatch.require_worker()
    if dispatch.runs_here():
        return
    try:
        serving = routing.workers_for_adding(spec.key)
    except Exception as exc:
        raise ServiceError(REDIS_DOWN, status=503) from exc
    if not serving:
        raise ServiceError(NO_WORKER_FOR_ADDED.format(key=spec.key), "reference", 503)


def _dispatch(job: Job) -> None:
    route = routing.any_worker_route(job.params["reference"], adds=job.model_key)
    try:
        dispatch.send(TASK_RUN_JOB, [str(job.pk)], route=route)
    except Exception as exc:  # the queue is down: say so, keep nothing half-added
        logger.warning("Could not queue adding %s: %s", job.model_key, exc)
        CatalogModel.objects.filter(pk=job.params["entry"]).delete()
        job.fail(exc.message if isinstance(exc, ServiceError) else REDIS_DOWN, "reference")
        broadcast.job_updated(job.page_id, job.pk)


def get_added(request, key: str) -> CatalogModel:
    """An entry added from the page, for an admin to act on (404 for what is not one)."""
    require_admin(request)
    entry = CatalogModel.objects.filter(key=key).first()
    if entry is not None:
        return entry
    if key in compute.catalog():
        raise ServiceError(
            f"{key} comes with TokenLens or from TOKENLENS_EXTRA_MODELS, not from this page; "
            "only models added here can be removed here",
            field="model",
            status=400,
        )
    raise ServiceError(f"No model {key!r} was added to the catalog", field="model", status=404)


def remove(request, entry: CatalogModel) -> None:
    """Take an added model out of the catalog; refused (409) while it is being added or while
    explorations use it (they would no longer step or open their analyses).

    The entry is locked and marked "removing" before the explorations are counted, and
    compute.hold_in_catalog locks it where an exploration is saved: an exploration saved at the same
    moment is either counted here or refused there, never left on a removed model. Workers
    free the model at their next heartbeat (worker.loaded.drop_stale_models)."""
    with transaction.atomic():
        locked = CatalogModel.objects.select_for_update().filter(pk=entry.pk).first()
        if locked is None:
            raise ServiceError(f"{entry.label} was removed already", "model", 404)
        if locked.status == CatalogModel.Status.ADDING:
            raise ServiceError(f"{entry.label} is still being added; wait for it", "model", 409)
        CatalogModel.objects.filter(pk=entry.pk).update(status=CatalogModel.Status.REMOVING)
        using = Exploration.objects.filter(model_key=entry.key).count()
        if using:  # the transaction rolls back: it stays ready
            raise ServiceError(
                f"{using} exploration{'s' if using != 1 else ''} "
                f"use{'s' if using == 1 else ''} {entry.label}; they would no longer step, so "
                "it stays until they are deleted",
                field="model",
                status=409,
            )
        audit.record(request, "model.remove", entry, f"Removed {entry.reference}", key=entry.key)
        locked.delete()


def catalog_entries(request) -> list[dict]:
    """The catalog as `request`'s user may read it: who added a model only for admins."""
    entries = compute.catalog_entries()
    if access.may_see_who_added_models(access.user_of(request)):
        return entries
    return [{**entry, "added_by": None} for entry in entries]


def adding(request) -> list[CatalogModel]:
    """The entries being added now, for an admin's page (abandoned ones cleared first)."""
    if not access.may_manage_models(access.user_of(request)):
        return []
    CatalogModel.objects.abandoned().delete()
    return list(CatalogModel.objects.filter(status=CatalogModel.Status.ADDING))
