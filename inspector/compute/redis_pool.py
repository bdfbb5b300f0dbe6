"""One Redis connection pool per URL (and options) in a process, whichever thread asks.

Django makes a cache object per thread, and daphne runs each request on a thread of its own,
so the cache's stock pool (one per cache object) opened a new Redis connection, with its
handshake, for nearly every request. The cache gets SharedConnectionPool (settings.CACHES);
the lease store and the heartbeat take their clients from here too."""

from __future__ import annotations

import threading

import redis

_pools: dict[tuple, redis.ConnectionPool] = {}
_lock = threading.Lock()


def pool_for(url: str, **options) -> redis.ConnectionPool:
    key = (url, tuple(sorted(options.items())))
    with _lock:
        if key not in _pools:
            _pools[key] = redis.ConnectionPool.from_url(url, **options)
        return _pools[key]


def client_for(url: str, **options) -> redis.Redis:
    """A client on the process's pool for url (clients are cheap; pools hold the connections)."""
    return redis.Redis(connection_pool=pool_for(url, **options))


class SharedConnectionPool(redis.ConnectionPool):
    """The pool class Django's Redis cache is given: from_url hands out the shared pool."""

    @classmethod
    def from_url(cls, url: str, **options) -> redis.ConnectionPool:
        return pool_for(url, **options)
