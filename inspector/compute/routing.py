"""Which Celery queue a piece of model work goes to: one queue per model, one per worker.

Every worker consumes the queue of each model it serves (`tokenlens.model.<key>`) and a queue
of its own (`tokenlens.worker.<name>`). Work that reads a branch's key/value cache (its steps,
its generation, its previews and lens) goes to the worker that holds that cache: the live
workers serving the model are ranked by rendezvous hashing (highest random weight, a form of
consistent hashing) of the work's affinity, an exploration's id, so all branches of one
exploration share a worker and its forks find their prefix cached. When a worker dies (its
heartbeat stops) only the explorations it held move, each to the next worker in its ranking;
a moved exploration's first step reads its prefix again: a cache miss costs time, never
correctness. Attention goes by its text too (the layer inputs kept for layer switches). Work
that needs no cache (heads, attribution…) goes to the model's queue, taken by whichever of its
workers is free.

Celery applies this through `task_routes` (route_task); the tasks carry the route as a keyword.
"""

from __future__ import annotations

import hashlib

from django.conf import settings

from engine.catalog import build_catalog
from inspector.compute import heartbeat
from inspector.models import CatalogModel

MODEL_QUEUE = "tokenlens.model.{model}"
WORKER_QUEUE = "tokenlens.worker.{worker}"
# Kinds of work whose result depends on a cache worth keeping on one worker (attention and its
# graph: the layer inputs that make a layer switch cost one layer).
STICKY_KINDS = frozenset(
    {"branch_step", "distribution", "logit_lens", "attention", "attention_graph"}
)


def affinity_of(kind: str, params: dict) -> str | None:
    """The key that keeps related work on one worker (None: any worker of the model)."""
    if params.get("affinity"):
        return str(params["affinity"])
    if kind not in STICKY_KINDS:
        return None
    text = f"{params.get('system_prompt') or ''}\x1f{params.get('prompt') or params.get('text')}"
    return "text:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def route(kind: str, params: dict) -> dict:
    """The route a task carries: its model and affinity."""
    return {"model": params.get("model") or "", "affinity": affinity_of(kind, params)}


def _weight(worker: str, affinity: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{worker}\x1f{affinity}".encode()).digest()[:8])


def choose_worker(workers: list[str], affinity: str) -> str:
    """Rendezvous hashing: the worker ranked first for this affinity."""
    return max(sorted(workers), key=lambda worker: _weight(worker, affinity))


def queue_for(model: str, affinity: str | None) -> str:
    """The queue for work on `model`: the model's own, or (with an affinity) the queue of the
    live worker that holds its cache."""
    if affinity:
        serving = heartbeat.workers_serving(model)
        if serving:
            return WORKER_QUEUE.format(worker=choose_worker(serving, affinity))
    return MODEL_QUEUE.format(model=model)


def any_worker_route(affinity: str, adds: str = "") -> dict:
    """The route of work that a live worker can do whatever models it serves now: adding the
    model `adds` to the catalog (no worker serves it yet). It goes to a worker that will serve
    it once added (workers_for_adding), so that the worker keeps the model it loaded."""
    return {"model": "", "affinity": affinity, "any_worker": True, "adds": adds}


def workers_for_adding(model: str) -> list[str]:
    """The live workers that will serve `model` once it is added: those serving every catalog
    model, and those whose TOKENLENS_WORKER_MODELS names it (redis.RedisError if Redis is
    down)."""
    live = heartbeat.live_workers()
    serving_all = set(heartbeat.open_workers())
    return sorted(name for name, models in live.items() if name in serving_all or model in models)


def _any_worker_queue(affinity: str, adds: str) -> str | None:
    workers = workers_for_adding(adds) or list(heartbeat.live_workers())
    return WORKER_QUEUE.format(worker=choose_worker(workers, affinity)) if workers else None


def route_task(name, args, kwargs, options, task=None, **_):
    """Celery's router (CELERY_TASK_ROUTES): a task's queue from the route it carries."""
    carried = (kwargs or {}).get("route")
    if carried and carried.get("any_worker"):
        queue = _any_worker_queue(carried.get("affinity") or name, carried.get("adds") or "")
        return {"queue": queue} if queue else None
    if not carried or not carried.get("model"):
        return None
    return {"queue": queue_for(carried["model"], carried.get("affinity"))}


def served_models() -> list[str]:
    """The models this worker serves: TOKENLENS_WORKER_MODELS, or every catalog model, those
    added from the Models page included (read again at each heartbeat, so a worker serves a
    model added after it started without a restart)."""
    if settings.TOKENLENS_WORKER_MODELS:
        return list(settings.TOKENLENS_WORKER_MODELS)
    served = list(build_catalog(settings.TOKENLENS_EXTRA_MODELS))
    added = CatalogModel.objects.ready().values_list("key", flat=True)
    return served + [key for key in added if key not in served]


def queues_of_this_worker() -> list[str]:
    """What a worker consumes: each served model's queue and its own."""
    own = WORKER_QUEUE.format(worker=heartbeat.worker_name())
    return [MODEL_QUEUE.format(model=model) for model in served_models()] + [own]
