"""The suite on several pytest-xdist workers (`make test` runs two): what each worker process
must not share with another. Loaded as a plugin (`-p tests.parallel`, pyproject's addopts), so
it runs before Django reads its settings.

- Redis: each worker's tests get a database of their own, and the app servers its e2e tests
  start get the next one (TOKENLENS_E2E_REDIS_DB), so two workers never share keys, Celery
  queues or channel groups. PostgreSQL test databases are pytest-django's (one per worker).
- Files: `make test` distributes whole files (`--dist loadfile`), so module-scoped fixtures
  such as the benchmarks' quick runs run once. (xdist's `loadgroup` would have kept every
  browser test on one worker, but pytest 9 ignores its marks: pytest-dev/pytest-xdist#1386.)
- Browser tests: Playwright's sync API leaves its event loop marked as running in the thread
  between calls, and xdist may hand a worker other files after a browser file; tests/conftest.py
  (pytest_runtest_protocol) lifts that mark around every other test.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse, urlunparse

FIRST_WORKER_DB = 4  # 0..3: the plain run's (its tests on 0, its e2e servers on 2)


def _worker_number() -> int | None:
    name = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", … (xdist sets it)
    return int(name.removeprefix("gw")) if name.startswith("gw") else None


def _own_redis_databases() -> None:
    number, url = _worker_number(), os.environ.get("TOKENLENS_REDIS_URL", "")
    if number is None or not url:
        return
    tests_db = FIRST_WORKER_DB + 2 * number
    os.environ["TOKENLENS_REDIS_URL"] = urlunparse(urlparse(url)._replace(path=f"/{tests_db}"))
    os.environ["TOKENLENS_E2E_REDIS_DB"] = str(tests_db + 1)


_own_redis_databases()
