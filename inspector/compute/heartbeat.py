"""Which Celery workers are alive and which models they serve: each worker writes its name and
the time into a Redis sorted set every few seconds, and the models it serves into a hash; the
web side answers 503 at once when no worker serving a model is recent, instead of queueing
work nobody will take, and routes work to live workers only (inspector.compute.routing).

The embedded default has no such check: its worker is a thread of the web process itself.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection

from inspector.compute import redis_pool

logger = logging.getLogger(__name__)
WORKERS_KEY = "tokenlens:workers"
WORKER_MODELS_KEY = "tokenlens:worker-models"  # name → the model keys it serves, comma-separated
# name → "1" when it serves every catalog model (no TOKENLENS_WORKER_MODELS): models added
# from the page are served by those workers only (and by one whose list names the model)
WORKER_OPEN_KEY = "tokenlens:worker-open"
HEARTBEAT_TTL_SECONDS = 15


def _redis():
    return _client_for(settings.TOKENLENS_REDIS_URL)


def _client_for(url: str):
    return redis_pool.client_for(url, socket_connect_timeout=1, socket_timeout=1)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(name: str, models: list[str] | None = None, serves_all: bool = False) -> None:
    now = time.time()
    client = _redis()
    pipe = client.pipeline()
    pipe.zadd(WORKERS_KEY, {name: now})
    if models is not None:
        pipe.hset(WORKER_MODELS_KEY, name, ",".join(models))
        pipe.hset(WORKER_OPEN_KEY, name, "1" if serves_all else "0")
    pipe.zremrangebyscore(WORKERS_KEY, "-inf", now - 10 * HEARTBEAT_TTL_SECONDS)
    pipe.execute()


def stop(name: str) -> None:
    pipe = _redis().pipeline().zrem(WORKERS_KEY, name).hdel(WORKER_MODELS_KEY, name)
    pipe.hdel(WORKER_OPEN_KEY, name).execute()


# A step asks who is alive up to three times (the check before queueing, the router): read
# Redis at most this often per process. A dead worker is noticed this much later.
LIVE_FOR_SECONDS = 1.0
_last_read: tuple[float, str, dict[str, list[str]]] | None = None


def live_workers() -> dict[str, list[str]]:
    """Every worker that beat within HEARTBEAT_TTL_SECONDS, with the models it serves."""
    global _last_read
    now, url = time.monotonic(), settings.TOKENLENS_REDIS_URL
    last = _last_read
    if last is not None and last[1] == url and now - last[0] < LIVE_FOR_SECONDS:
        return last[2]
    workers = _read_live_workers()
    _last_read = (now, url, workers)
    return workers


def _read_live_workers() -> dict[str, list[str]]:
    client = _redis()
    names = [
        name.decode()
        for name in client.zrangebyscore(WORKERS_KEY, time.time() - HEARTBEAT_TTL_SECONDS, "+inf")
    ]
    served = client.hmget(WORKER_MODELS_KEY, names) if names else []
    return {
        name: (models.decode().split(",") if models else [])
        for name, models in zip(names, served, strict=True)
    }


def open_workers() -> list[str]:
    """The live workers that serve every catalog model, models added later included."""
    names = list(live_workers())
    flags = _redis().hmget(WORKER_OPEN_KEY, names) if names else []
    return [name for name, flag in zip(names, flags, strict=True) if flag == b"1"]


def workers_serving(model: str) -> list[str]:
    """The live workers that serve `model` (redis.RedisError if Redis is down)."""
    return [name for name, models in live_workers().items() if model in models]


def _read_served(models: Callable[[], list[str]], previous: list[str] | None) -> list[str]:
    """What the worker serves now (the catalog read again: models added from the page join);
    the previous answer while the database cannot be read."""
    try:
        return models()
    except Exception:
        logger.warning("Could not read the models this worker serves", exc_info=True)
        return previous or []
    finally:
        connection.close()  # this thread must not hold a database connection between beats


def _take_new(on_new: Callable[[list[str]], None], new: list[str]) -> list[str]:
    """The new models whose queues the worker took: on_new(…) failing (Redis away a moment)
    is logged and the model left out, so that the next beat tries again."""
    taken = []
    for key in new:
        try:
            on_new([key])
        except Exception:
            logger.warning("Could not start consuming the queue of %s", key, exc_info=True)
            continue
        taken.append(key)
    return taken


_every_beat: list[Callable[[], None]] = []


def at_every_beat(hook: Callable[[], None]) -> None:
    """Run hook() at every beat of this worker process (worker.tasks: free the models that
    left the catalog). Its failures are logged; the beats go on."""
    if hook not in _every_beat:
        _every_beat.append(hook)


def _run_hooks() -> None:
    for hook in list(_every_beat):
        try:
            hook()
        except Exception:
            logger.warning("A heartbeat hook failed", exc_info=True)
        finally:
            connection.close()


def _one_beat(name, models, on_new, served: list[str] | None) -> list[str]:
    """One beat: what the worker serves now (new models taken on the way), then sent."""
    now = _read_served(models, served)
    new = [key for key in now if served is not None and key not in served]
    if new and on_new is not None:
        left_out = set(new) - set(_take_new(on_new, new))
        now = [key for key in now if key not in left_out]
    _run_hooks()
    try:
        beat(name, now, serves_all=not settings.TOKENLENS_WORKER_MODELS)
    except Exception:  # Redis away for a moment: try again at the next beat
        logger.warning("Worker heartbeat failed", exc_info=True)
    return now


_beat_soon = threading.Event()


def wait_for_next_beat(seconds: float) -> None:
    """The pause between two beats, cut short by beat_soon."""
    _beat_soon.wait(seconds)
    _beat_soon.clear()


def beat_soon() -> None:
    """Beat now rather than at the next interval (a model was just added: this worker takes
    its queue and says so at once, so the first exploration on it finds a worker)."""
    _beat_soon.set()


def start_beating(
    models: Callable[[], list[str]], on_new: Callable[[list[str]], None] | None = None
) -> threading.Thread:
    """Beat from a daemon thread for as long as this worker process lives (it keeps beating
    while its threads are busy with long computations). `models` is asked at every beat;
    on_new(keys) hears of the models it names that it did not name at the previous beat (a
    failure there leaves them out of what this beat says is served: the next one tries them
    again). The hooks of at_every_beat run at every beat."""
    name = worker_name()

    def run():
        served: list[str] | None = None
        while True:
            served = _one_beat(name, models, on_new, served)
            wait_for_next_beat(HEARTBEAT_TTL_SECONDS / 3)

    thread = threading.Thread(target=run, daemon=True, name="tokenlens-heartbeat")
    thread.start()
    return thread
