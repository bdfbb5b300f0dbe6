"""Sending work to a worker by task name (inspector.protocol); the web side imports no worker
code. With TOKENLENS_REDIS_URL a Celery worker takes it from the queue; in the embedded default
TOKENLENS_WORKER_THREADS threads of this process run it (they import the worker's tasks, with
torch, on first use), like a Celery worker's thread pool: each waits on the model's scheduler,
which runs their steps together in batched passes and keeps the models loaded.
"""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import lru_cache

from celery.exceptions import TaskRevokedError
from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.db import close_old_connections, connections
from kombu.exceptions import OperationalError

from inspector.compute import heartbeat as worker_heartbeat
from inspector.errors import REDIS_DOWN, ServiceError
from inspector.protocol import EXPIRED, TASK_WARM_UP
from tokenlens_site.celery import app

logger = logging.getLogger(__name__)
NO_WORKER = (
    "No worker is running to compute this (none has reported in the last "
    "{seconds} s). Start one with `make worker`, then try again; nothing was lost."
)
NO_ANSWER = "No worker answered within {seconds} s; is a worker running (`make worker`)?"
NO_WORKER_FOR_MODEL = (
    "No running worker serves the model {model!r} (workers that reported in the last "
    "{seconds} s serve: {served}). Start one with `make worker MODELS={model}`, then try "
    "again; nothing was lost."
)


def runs_here() -> bool:
    """Whether tasks run in this process (the embedded default, or inline in tests)."""
    return settings.CELERY_TASK_ALWAYS_EAGER or settings.TOKENLENS_TASKS_IN_PROCESS


@lru_cache(maxsize=1)
def _in_process_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=settings.TOKENLENS_WORKER_THREADS, thread_name_prefix="tokenlens-worker"
    )


@lru_cache(maxsize=1)
def _load_worker() -> None:
    """Import the worker's task modules (app.conf.include), once, on first use."""
    app.loader.import_default_modules()


def _local_task(name: str):
    _load_worker()
    return app.tasks[name]


def _run_here(name: str, args: list, deadline: float | None):
    """Run a task in this thread with a fresh database connection; work whose deadline passed
    while it waited is dropped (whoever asked was told it failed)."""
    if deadline is not None and time.monotonic() > deadline:
        logger.info("Dropped %s: it waited past its deadline", name)
        return None
    close_old_connections()
    try:
        return _local_task(name).apply(args=args).get()
    finally:
        connections.close_all()


def warm_up_here() -> None:
    """The embedded default's start (daphne importing the ASGI app): one in-process worker
    thread loads the default model and UMAP's code (worker.loaded.warm_up)."""
    if settings.TOKENLENS_WARM_UP and runs_here() and not settings.CELERY_TASK_ALWAYS_EAGER:
        models = [settings.TOKENLENS_DEFAULT_MODEL]
        _in_process_executor().submit(_run_here, TASK_WARM_UP, [models], None)


def require_worker(model: str = "") -> None:
    """ServiceError (503) at once when no Celery worker (serving `model`, if given) has sent a
    heartbeat lately, instead of queueing work that nobody will take (see worker_heartbeat).
    Nothing to check when the work runs in this process."""
    if runs_here():
        return
    seconds = worker_heartbeat.HEARTBEAT_TTL_SECONDS
    try:
        live = worker_heartbeat.live_workers()
    except Exception as exc:
        raise ServiceError(REDIS_DOWN, status=503) from exc
    if not live:
        raise ServiceError(NO_WORKER.format(seconds=seconds), status=503)
    if model and not any(model in models for models in live.values()):
        served = ", ".join(sorted({m for models in live.values() for m in models})) or "none"
        message = NO_WORKER_FOR_MODEL.format(model=model, seconds=seconds, served=served)
        raise ServiceError(message, field="model", status=503)


def send(name: str, args: list, expires: float | None = None, route: dict | None = None) -> None:
    """Queue a task (dropped unstarted after `expires` seconds) without waiting for it;
    ServiceError (503) when the queue is unreachable or no worker is alive. `route` (model,
    affinity) picks its queue (inspector.compute.routing)."""
    try:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            _local_task(name).apply(args=args)
        elif settings.TOKENLENS_TASKS_IN_PROCESS:
            deadline = time.monotonic() + expires if expires else None
            _in_process_executor().submit(_run_here, name, args, deadline)
        else:
            require_worker((route or {}).get("model", ""))
            app.send_task(
                name,
                args=args,
                kwargs=_routed(route),
                retry=False,
                expires=expires,
                ignore_result=True,  # nobody waits for it: no result stored, none subscribed to
            )
    except ServiceError:
        raise
    except Exception as exc:
        logger.warning("Could not queue %s: %s", name, exc)
        raise ServiceError(REDIS_DOWN, status=503) from exc


# A worker that took the work but whose model could not step it by the deadline answers so
# itself (a 503 saying the model is busy): wait that long for its answer.
ANSWER_GRACE_SECONDS = 2


def _routed(route: dict | None) -> dict:
    return {"route": route} if route else {}


WAITER_SLACK_SECONDS = 1


@lru_cache(maxsize=1)
def _waiters() -> ThreadPoolExecutor:
    """Long-lived threads that send a task and wait for its result. Celery keeps one result
    backend per thread (the Redis one is not thread-safe), and the web server runs each request
    on a new thread: waiting there built a backend, with its Redis connections, per request."""
    return ThreadPoolExecutor(
        max_workers=settings.TOKENLENS_WEB_WAITERS, thread_name_prefix="tokenlens-waiter"
    )


def _send_and_wait(name: str, args: list, timeout: float, route: dict | None):
    pending = app.send_task(name, args=args, kwargs=_routed(route), retry=False, expires=timeout)
    try:
        return pending.get(timeout=timeout + ANSWER_GRACE_SECONDS)
    finally:
        with contextlib.suppress(Exception):  # read once: the stored result is not needed
            pending.forget()


def call(name: str, args: list, timeout: float, route: dict | None = None):
    """Run a task in a worker and wait up to `timeout` seconds (and the grace) for its result;
    work not started by then is never done (a still-queued message expires, a queued thread
    job is cancelled)."""
    try:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            return _local_task(name).apply(args=args).get()
        if settings.TOKENLENS_TASKS_IN_PROCESS:
            future = _in_process_executor().submit(_run_here, name, args, None)
            try:
                return future.result(timeout + ANSWER_GRACE_SECONDS)
            finally:
                future.cancel()  # still queued: it never runs
        require_worker((route or {}).get("model", ""))
        waited = _waiters().submit(_send_and_wait, name, args, timeout, route)
        try:
            return waited.result(timeout + ANSWER_GRACE_SECONDS + WAITER_SLACK_SECONDS)
        finally:
            waited.cancel()  # not sent yet: it never is
    except (FutureTimeout, CeleryTimeout) as exc:
        raise ServiceError(
            NO_ANSWER.format(seconds=timeout),
            status=503,
        ) from exc
    except OperationalError as exc:
        raise ServiceError(REDIS_DOWN, status=503) from exc
    except TaskRevokedError as exc:  # expired in the queue just before the wait ended
        raise ServiceError(EXPIRED, status=503) from exc
