"""Leases: who may run a branch's generation right now, and proof that it is still alive.

A lease is a key holding its owner's token, with a time to live. The web side takes it when it
queues a generate-to-end (for as long as queued work may wait); the worker that runs the
generation must hold the same token and renews it with a heartbeat while it runs. So:
- a generation that is only waiting behind other work still holds its lease (not "dead");
- a worker that dies stops renewing, and the lease lapses within LEASE_SECONDS;
- a redelivered or stale message whose token is no longer the lease's does nothing;
- releasing is compare-and-delete: a generation that ends never removes a newer one's lease.

With Redis (TOKENLENS_REDIS_URL) the compare-and-renew and compare-and-delete are Lua scripts,
atomic on the server; the embedded default keeps leases in this process under a lock.
"""

from __future__ import annotations

import threading
import time
import uuid
from functools import lru_cache

from django.conf import settings

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def new_token() -> str:
    return uuid.uuid4().hex


class _LocalLeases:
    """Leases of the embedded default (one process: the web server and its worker thread)."""

    def __init__(self):
        self._held: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _current(self, key: str) -> str | None:
        token, until = self._held.get(key, (None, 0.0))
        if token is not None and time.monotonic() >= until:
            del self._held[key]
            return None
        return token

    def acquire(self, key: str, token: str, seconds: float) -> bool:
        with self._lock:
            if self._current(key) is not None:
                return False
            self._held[key] = (token, time.monotonic() + seconds)
            return True

    def renew(self, key: str, token: str, seconds: float) -> bool:
        with self._lock:
            if self._current(key) != token:
                return False
            self._held[key] = (token, time.monotonic() + seconds)
            return True

    def release(self, key: str, token: str) -> bool:
        with self._lock:
            if self._current(key) != token:
                return False
            del self._held[key]
            return True

    def holder(self, key: str) -> str | None:
        with self._lock:
            return self._current(key)


class _RedisLeases:
    def __init__(self, url: str):
        from inspector.compute import redis_pool

        self._redis = redis_pool.client_for(
            url, socket_connect_timeout=1, socket_timeout=1, decode_responses=True
        )
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)

    def acquire(self, key: str, token: str, seconds: float) -> bool:
        return bool(self._redis.set(key, token, nx=True, px=int(seconds * 1000)))

    def renew(self, key: str, token: str, seconds: float) -> bool:
        return bool(self._renew(keys=[key], args=[token, int(seconds * 1000)]))

    def release(self, key: str, token: str) -> bool:
        return bool(self._release(keys=[key], args=[token]))

    def holder(self, key: str) -> str | None:
        return self._redis.get(key)


@lru_cache(maxsize=4)
def _store_for(url: str):
    return _RedisLeases(url) if url else _LocalLeases()


def store():
    """This process's lease store (Redis when configured; errors are redis.RedisError)."""
    return _store_for(settings.TOKENLENS_REDIS_URL)


class Heartbeat:
    """Renews a lease every `every` seconds in a daemon thread while a piece of work runs;
    `lost` is set once the lease is no longer this token's (taken over, or it lapsed)."""

    def __init__(self, key: str, token: str, seconds: float):
        self.key, self.token, self.seconds = key, token, seconds
        self.lost = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"lease {key}")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        renewed_at = time.monotonic()
        while not self._stopped.wait(self.seconds / 3):
            try:
                if not store().renew(self.key, self.token, self.seconds):
                    break  # someone else holds it now, or it lapsed
                renewed_at = time.monotonic()
            except Exception:  # Redis slow or away: try again until the lease would lapse
                if time.monotonic() - renewed_at >= self.seconds:
                    break
        else:
            return
        self.lost.set()
