"""Use-cases shared by the pages, the API and the websocket consumer.

Work that needs a model goes to a worker: a Celery worker when TOKENLENS_REDIS_URL is set, else
a single worker thread of this process (the embedded default), which, like a solo Celery worker,
runs one computation at a time and keeps the models it loaded.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import lru_cache

from celery.exceptions import TaskRevokedError
from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connections, transaction
from kombu.exceptions import OperationalError

from engine import tasks
from engine.loading import build_catalog, inspect_prepared, is_prepared
from engine.tasks import LOADED_KEY, compute, compute_task, run_job_task
from engine.types import ModelSpec
from inspector import broadcast, budget, job_expiry, worker_heartbeat
from inspector.models import Job
from inspector.outages import REDIS_DOWN as QUEUE_DOWN

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """A request that cannot be served; `field` and `message` are shown to the person."""

    def __init__(self, message: str, field: str = "non_field_errors", status: int = 400):
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


@lru_cache(maxsize=1)
def _in_process_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenlens-worker")


def catalog() -> dict[str, ModelSpec]:
    return build_catalog(settings.TOKENLENS_EXTRA_MODELS)


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


def catalog_entries() -> list[dict]:
    """Every catalog model with what is known about it without loading it here."""
    entries = []
    for key, spec in catalog().items():
        loaded = _loaded_state(key)
        prepared = is_prepared(spec, settings.TOKENLENS_MODEL_CACHE)
        info = (loaded or {}).get("info") or (
            _prepared_info(spec, str(settings.TOKENLENS_MODEL_CACHE)) if prepared else None
        )
        entries.append(
            {
                "key": key,
                "label": spec.label,
                "source": spec.source,
                "location": spec.location,
                "description": spec.description,
                "prepared": prepared,
                "loaded": loaded is not None,
                **{name: value for name, value in (info or {}).items() if name not in ("key",)},
            }
        )
    return entries


def _apply_in_thread(task, args: list, deadline: float | None) -> None:
    """Run a task in the worker thread, with a fresh database connection each time; work
    whose deadline passed while it waited is dropped (whoever asked was told it failed)."""
    if deadline is not None and time.monotonic() > deadline:
        logger.info("Dropped %s: it waited past its deadline", task.name)
        return
    close_old_connections()
    try:
        task.apply(args=args)
    finally:
        connections.close_all()


def _send(task, args: list, expires: float | None = None) -> None:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        task.apply(args=args)
    elif settings.TOKENLENS_TASKS_IN_PROCESS:
        deadline = time.monotonic() + expires if expires else None
        _in_process_executor().submit(_apply_in_thread, task, args, deadline)
    else:
        require_worker()
        task.apply_async(args=args, retry=False, expires=expires)


def dispatch(task, args: list, expires: float | None = None) -> None:
    """Queue a task for a worker (dropped unstarted after `expires` seconds); ServiceError
    (503) when the queue is unreachable or no worker is alive."""
    try:
        _send(task, args, expires)
    except ServiceError:
        raise
    except Exception as exc:
        logger.warning("Could not queue %s: %s", task.name, exc)
        raise ServiceError(QUEUE_DOWN, status=503) from exc


NO_WORKER = (
    "No worker is running to compute this (none has reported in the last "
    "{seconds} s). Start one with `make worker`, then try again; nothing was lost."
)


def require_worker() -> None:
    """ServiceError (503) at once when no Celery worker has sent a heartbeat lately, instead
    of queueing work that nobody will take (see worker_heartbeat)."""
    try:
        alive = worker_heartbeat.any_alive()
    except Exception as exc:
        raise ServiceError(QUEUE_DOWN, status=503) from exc
    if not alive:
        seconds = worker_heartbeat.HEARTBEAT_TTL_SECONDS
        raise ServiceError(NO_WORKER.format(seconds=seconds), status=503)


def _dispatch_job(job: Job) -> None:
    try:
        _send(run_job_task, [str(job.pk)])  # a job too old to run fails itself (jobs.run_job)
    except Exception as exc:  # broker down: say so instead of spinning forever
        logger.warning("Could not queue job %s: %s", job.pk, exc)
        job.fail(exc.message if isinstance(exc, ServiceError) else QUEUE_DOWN)
        broadcast.job_updated(job.page_id, job.pk)


def start_job(kind: str, params: dict, *, page_id=None, session_key: str = "") -> Job:
    """Save a Job and queue it once the row is committed; the page follows its progress.
    ServiceError (503) first, with nothing saved, when no worker could take it."""
    if not (settings.CELERY_TASK_ALWAYS_EAGER or settings.TOKENLENS_TASKS_IN_PROCESS):
        require_worker()
    budget.charge(kind, params)
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


def _release_connection() -> None:
    """Hand this thread's database connection back (to the pool) while it waits for a worker:
    sixteen requests waiting on the model must not hold sixteen connections. The next query
    takes one again. Inside a transaction the connection stays."""
    connection = connections["default"]
    if not connection.in_atomic_block:
        connection.close()


def compute_now(kind: str, params: dict) -> dict:
    """Run a computation in the worker and wait for it (the synchronous API). Charged to the
    person's budget before it is queued, and for what it really cost once it is done."""
    if not (settings.CELERY_TASK_ALWAYS_EAGER or settings.TOKENLENS_TASKS_IN_PROCESS):
        require_worker()
    budget.charge(kind, params)
    timeout = settings.TOKENLENS_TASK_TIMEOUT
    # The worker drops the work if it starts too late, and a step is not saved after this.
    params = {**params, "expires_at": time.time() + timeout}
    _release_connection()
    try:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            outcome = compute(kind, params)
        elif settings.TOKENLENS_TASKS_IN_PROCESS:
            future = _in_process_executor().submit(compute, kind, params)
            try:
                outcome = future.result(timeout)
            finally:
                future.cancel()  # still queued: it never runs
        else:
            outcome = compute_task.apply_async(
                args=[kind, params], retry=False, expires=timeout
            ).get(timeout=timeout)
    except (FutureTimeout, CeleryTimeout) as exc:
        raise ServiceError(
            f"No worker answered within {timeout} s; is a worker running (`make worker`)?",
            status=503,
        ) from exc
    except OperationalError as exc:
        raise ServiceError(f"The task queue (Redis) is unreachable: {exc}", status=503) from exc
    except TaskRevokedError as exc:  # expired in the queue just before the wait ended
        raise ServiceError(tasks.EXPIRED, status=503) from exc
    if "error" in outcome:
        raise ServiceError(outcome["error"]["message"], field=outcome["error"]["field"])
    result = outcome["result"]
    budget.charge_actual(kind, result)
    return result


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

    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping()
        status = "ok"
    except redis.RedisError:
        status = "down"
    _redis_status_cache[url] = (time.monotonic(), status)
    return status
