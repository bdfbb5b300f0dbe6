"""Celery tasks: the work a worker takes by name (inspector.protocol). In the embedded default
the same tasks run in worker threads of the web process. `route` is what Celery's router read
to choose the task's queue (inspector.compute.routing); the work itself does not need it."""

from __future__ import annotations

import threading

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from inspector.protocol import (
    TASK_COMPUTE,
    TASK_GENERATE,
    TASK_RUN_JOB,
    TASK_STEP_AND_REPLY,
    TASK_WARM_UP,
)
from worker.computations import compute
from worker.generation import generate_branch
from worker.jobs import run_job
from worker.loaded import drop_stale_models, scheduler, warm_up
from worker.replies import step_and_reply


@shared_task(name=TASK_COMPUTE)
def compute_task(kind: str, params: dict, route: dict | None = None) -> dict:
    """Synchronous API calls: the web process waits for this result."""
    return compute(kind, params)


@shared_task(name=TASK_RUN_JOB)
def run_job_task(job_id: str, route: dict | None = None) -> None:
    """Page work: progress and the result are written to the Job row and pushed to the page."""
    run_job(job_id)


@shared_task(name=TASK_GENERATE)
def generate_branch_task(params: dict, route: dict | None = None) -> dict:
    """Generate to the end on a saved branch, pushing each step to the exploration's pages."""
    return generate_branch(params, scheduler)


@shared_task(name=TASK_STEP_AND_REPLY)
def step_and_reply_task(params: dict, route: dict | None = None) -> dict:
    """A page's step: saved, pushed to the exploration's pages, answered on the page's socket."""
    return step_and_reply(params)


@shared_task(name=TASK_WARM_UP)
def warm_up_task(models: list[str]) -> None:
    """The embedded worker's start (a Celery worker warms up on worker_ready instead)."""
    warm_up(models)


@worker_ready.connect
def _start_warming_up(**_):
    """A Celery worker loads the default model (or the first it serves) and UMAP's code in the
    background: it takes work meanwhile, and a request for that model waits for the load under
    way instead of starting another."""
    from inspector.compute import routing

    served = routing.served_models()
    if settings.TOKENLENS_WARM_UP and served:
        first = settings.TOKENLENS_DEFAULT_MODEL
        models = [first if first in served else served[0]]
        threading.Thread(target=warm_up, args=(models,), name="warm-up", daemon=True).start()


@worker_ready.connect
def _free_models_that_left(**_):
    """At every heartbeat a Celery worker frees the models removed from the catalog, or added
    again from elsewhere, that it holds (their weights, caches and scheduler thread)."""
    from inspector.compute import heartbeat

    heartbeat.at_every_beat(drop_stale_models)
