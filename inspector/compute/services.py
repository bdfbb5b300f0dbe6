"""Use-cases shared by the pages, the API and the websocket consumer: the model catalog as the
web side knows it, jobs, and computations waited for. Work that needs a model goes to a worker
by task name (inspector.compute.dispatch)."""

from __future__ import annotations

import logging
import time
from functools import lru_cache

from django.apps import apps
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connections, transaction

from engine.catalog import build_catalog, inspect_prepared, is_prepared
from engine.types import ModelSpec
from inspector import broadcast
from inspector.compute import budget, dispatch, routing
from inspector.compute import expiry as job_expiry
from inspector.compute import heartbeat as worker_heartbeat
from inspector.errors import REDIS_DOWN as QUEUE_DOWN
from inspector.errors import ServiceError
from inspector.models import CatalogModel, Job
from inspector.models.catalog import ADDED_HERE
from inspector.protocol import LOADED_KEY, TASK_COMPUTE, TASK_RUN_JOB

logger = logging.getLogger(__name__)


def catalog() -> dict[str, ModelSpec]:
    """The models everyone may choose: the packaged ones, TOKENLENS_EXTRA_MODELS, then those
    added from the Models page once ready (inspector.catalog)."""
    models = build_catalog(settings.TOKENLENS_EXTRA_MODELS)
    for entry in added_models():
        models.setdefault(entry.key, entry.spec)
    return models


def added_models() -> list[CatalogModel]:
    """The ready models added from the Models page. None while the app is starting, before
    its tables exist (`migrate` on a new database) or where no database may be used (code that
    builds serializers at import time, under a test runner that blocks the database)."""
    if not apps.ready:
        return []
    try:
        return list(CatalogModel.objects.ready().select_related("added_by"))
    except (DatabaseError, RuntimeError) as exc:
        logger.info("The models added to the catalog cannot be read: %s", exc)
        return []


REMOVED_MEANWHILE = (
    "{key} was removed from the catalog meanwhile; choose another model (nothing was saved)"
)


def hold_in_catalog(model_key: str) -> None:
    """Inside the transaction that saves an exploration on `model_key`: a model added from
    the page is locked until it commits (inspector.catalog's remove waits for it, then counts
    it), and one removed meanwhile is refused (400; the transaction rolls back)."""
    if model_key in build_catalog(settings.TOKENLENS_EXTRA_MODELS):
        return  # packaged or from the settings: never removed at run time
    held = CatalogModel.objects.select_for_update().filter(
        key=model_key, status=CatalogModel.Status.READY
    )
    if held.first() is None:
        raise ServiceError(REMOVED_MEANWHILE.format(key=model_key), field="model_key")


def model_choices() -> list[tuple[str, str]]:
    return [(key, spec.label) for key, spec in catalog().items()]


def _loaded_state(key: str) -> dict | None:
    if redis_status() == "down":  # known down: do not wait for the cache to fail again
        return None
    try:
        return cache.get(LOADED_KEY.format(key=key))
    except Exception:  # Redis down: "loaded" is unknown, the page still works
        return None


@lru_cache(maxsize=16)
def _prepared_info(spec: ModelSpec, cache_root: str) -> dict | None:
    info = inspect_prepared(spec, cache_root)
    return info.to_dict() if info else None


def _live_workers() -> dict[str, list[str]] | None:
    """The live Celery workers and what they serve (None: embedded, or Redis unknown)."""
    if dispatch.runs_here() or redis_status() != "ok":
        return None
    try:
        return worker_heartbeat.live_workers()
    except Exception:
        return None


def catalog_entries() -> list[dict]:
    """Every catalog model with what is known about it without loading it here, and (with
    Celery workers) which live workers serve it."""
    entries = []
    live = _live_workers()
    added = {entry.key: entry for entry in added_models()}
    for key, spec in catalog().items():
        loaded = _loaded_state(key)
        prepared = is_prepared(spec, settings.TOKENLENS_MODEL_CACHE)
        info = (loaded or {}).get("info") or (
            _prepared_info(spec, str(settings.TOKENLENS_MODEL_CACHE)) if prepared else None
        )
        entry = added.get(key) if spec.description.endswith(ADDED_HERE) else None
        info = info or (entry.card() if entry else None)
        entries.append(
            {
                "key": key,
                "label": spec.label,
                "source": spec.source,
                "location": spec.location,
                "description": spec.description,
                "prepared": prepared,
                "loaded": loaded is not None,
                "workers": None
                if live is None
                else sorted(name for name, models in live.items() if key in models),
                **{name: value for name, value in (info or {}).items() if name not in ("key",)},
                **_added_facts(entry),
            }
        )
    return entries


def _added_facts(entry: CatalogModel | None) -> dict:
    """Who added a model from the Models page, and when (None for the others)."""
    by = entry.added_by.get_username() if entry and entry.added_by else None
    return {"added_by": by, "added_at": entry.ready_at if entry else None}


def _dispatch_job(job: Job) -> None:
    try:  # a job too old to run fails itself
        dispatch.send(TASK_RUN_JOB, [str(job.pk)], route=routing.route(job.kind, job.params))
    except Exception as exc:  # broker down: say so instead of spinning forever
        logger.warning("Could not queue job %s: %s", job.pk, exc)
        job.fail(exc.message if isinstance(exc, ServiceError) else QUEUE_DOWN)
        broadcast.job_updated(job.page_id, job.pk)


def start_job(kind: str, params: dict, *, page_id=None, session_key: str = "") -> Job:
    """Save a Job and queue it once the row is committed; the page follows its progress.
    ServiceError (503) first, with nothing saved, when no worker could take it."""
    dispatch.require_worker(params.get("model", ""))
    budget.charge(kind, params)
    params = {**params, "charged_to": budget.payers()}  # what it really cost, once run
    job_expiry.expire_jobs_now_and_then()
    job = Job.objects.create(
        kind=kind,
        model_key=params.get("model", ""),
        params=params,
        page_id=page_id,
        session_key=session_key or "",
        stage="Waiting for a worker",
    )
    transaction.on_commit(lambda: _dispatch_job(job))
    return job


def release_connection() -> None:
    """Hand this thread's database connection back (to the pool) while it waits for the model:
    sixteen requests (or worker threads) waiting on a pass must not hold sixteen connections.
    The next query takes one again. Inside a transaction the connection stays."""
    connection = connections["default"]
    if not connection.in_atomic_block:
        connection.close()


def compute_now(kind: str, params: dict) -> dict:
    """Run a computation in the worker and wait for it (the synchronous API). Charged to the
    person's budget before it is queued, and for what it really cost once it is done. Work on
    a saved branch names its model and its exploration as params["affinity"], so it goes to
    the worker that holds the exploration's caches."""
    route = routing.route(kind, params)
    dispatch.require_worker(route["model"])
    budget.charge(kind, params)
    timeout = settings.TOKENLENS_TASK_TIMEOUT
    # The worker drops the work if it starts too late, and a step is not saved after this.
    params = {**params, "expires_at": time.time() + timeout}
    release_connection()
    outcome = dispatch.call(TASK_COMPUTE, [kind, params], timeout, route)
    if "error" in outcome:
        error = outcome["error"]
        raise ServiceError(error["message"], error["field"], error.get("status", 400))
    result = outcome["result"]
    budget.charge_actual(kind, result)
    return result


def compute_later(task: str, kind: str, params: dict) -> None:
    """Queue `task`, which runs computation `kind` and sends its outcome on (see
    worker.replies), without waiting for it. Checked and charged up front like compute_now;
    the worker charges what it really cost to params["charged_to"]. No message expiry: the
    worker itself drops work that starts after params["expires_at"] and says so."""
    route = routing.route(kind, params)
    dispatch.require_worker(route["model"])
    budget.charge(kind, params)
    deadline = time.time() + settings.TOKENLENS_TASK_TIMEOUT
    params = {**params, "expires_at": deadline, "charged_to": budget.payers()}
    dispatch.send(task, [params], route=route)


_redis_status_cache: dict[str, tuple[float, str]] = {}


def redis_status() -> str:
    """ "off" (embedded default), "ok", or "down"; checked at most every 3 seconds."""
    url = settings.TOKENLENS_REDIS_URL
    if not url:
        return "off"
    checked_at, status = _redis_status_cache.get(url, (0.0, ""))
    if time.monotonic() - checked_at < 3:
        return status
    import redis

    from inspector.compute import redis_pool

    try:
        redis_pool.client_for(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping()
        status = "ok"
    except redis.RedisError:
        status = "down"
    _redis_status_cache[url] = (time.monotonic(), status)
    return status
