"""Whether any Celery worker is alive: each worker writes its name and the time into a Redis
sorted set every few seconds; the web side answers 503 at once when no entry is recent,
instead of queueing work nobody will take and holding a thread for the whole task timeout.

The embedded default has no such check: its worker is a thread of the web process itself.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from functools import lru_cache

from django.conf import settings

logger = logging.getLogger(__name__)
WORKERS_KEY = "tokenlens:workers"
HEARTBEAT_TTL_SECONDS = 15


def _redis():
    return _client_for(settings.TOKENLENS_REDIS_URL)


@lru_cache(maxsize=4)
def _client_for(url: str):
    """One client (and connection pool) per URL for the life of the process."""
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(name: str) -> None:
    now = time.time()
    client = _redis()
    client.zadd(WORKERS_KEY, {name: now})
    client.zremrangebyscore(WORKERS_KEY, "-inf", now - 10 * HEARTBEAT_TTL_SECONDS)


def stop(name: str) -> None:
    _redis().zrem(WORKERS_KEY, name)


def any_alive() -> bool:
    """True when some worker beat within HEARTBEAT_TTL_SECONDS (redis.RedisError if down)."""
    return _redis().zcount(WORKERS_KEY, time.time() - HEARTBEAT_TTL_SECONDS, "+inf") > 0


def start_beating() -> threading.Thread:
    """Beat from a daemon thread for as long as this worker process lives (it keeps beating
    while the main thread is busy with a long computation)."""
    name = worker_name()

    def run():
        while True:
            try:
                beat(name)
            except Exception:  # Redis away for a moment: try again at the next beat
                logger.warning("Worker heartbeat failed", exc_info=True)
            time.sleep(HEARTBEAT_TTL_SECONDS / 3)

    thread = threading.Thread(target=run, daemon=True, name="tokenlens-heartbeat")
    thread.start()
    return thread
