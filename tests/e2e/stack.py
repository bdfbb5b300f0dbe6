"""The app from its own entry points, for fault tests and the benchmarks. Services mode: our own
Redis server on a free port, our own PostgreSQL database (on TOKENLENS_DATABASE_URL's server),
daphne with DEBUG off, and `workers` Celery workers. Embedded mode (the README's `make run`):
daphne alone on a SQLite file, its worker threads in the web process. Loopback only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from tests.conftest import require_env
from tests.e2e.conftest import (
    ROOT,
    _free_port,
    _postgres,
    _spawn,
    _stop,
    _wait_until_healthy,
    _with_database,
    wait_for_worker,
)

POOL_SIZE = 4


class Stack:
    def __init__(
        self,
        workdir: Path,
        with_worker: bool,
        database_url: str = "",
        *,
        embedded: bool = False,
        workers: int = 1,
        webs: int = 1,
        **env,
    ):
        self.workdir = workdir
        self.embedded = embedded
        if not embedded:
            database_url = database_url or require_env("TOKENLENS_DATABASE_URL")
        self.database_url = database_url
        self.extra_env = {name: str(value) for name, value in env.items()}
        self.database = f"tokenlens_faults_{uuid.uuid4().hex[:8]}"
        self.redis_port = _free_port()
        self.ports = [_free_port() for _ in range(webs)]
        self.port = self.ports[0]
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]
        self.url = self.urls[0]
        self.workers = workers if with_worker and not embedded else 0
        self.with_worker = bool(self.workers)
        self.processes: list[subprocess.Popen] = []
        self.redis: subprocess.Popen | None = None

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENLENS_")}
        env.update(
            DEBUG="false",
            SECRET_KEY="faults-" + "x" * 60,
            PYTHONUNBUFFERED="1",
            TOKENLENS_DATABASE_URL=_with_database(self.database_url, self.database),
            TOKENLENS_REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            TOKENLENS_DB_POOL_SIZE=str(POOL_SIZE),
            TOKENLENS_VISITOR_BUDGET=str(10**9),
            TOKENLENS_GENERATION_RATE="10000/m",
            TOKENLENS_MODEL_CACHE=os.environ.get(
                "TOKENLENS_MODEL_CACHE", str(ROOT / "var" / "models")
            ),
        )
        if self.embedded:
            env["TOKENLENS_DATABASE_URL"] = f"sqlite:///{self.workdir / 'db.sqlite3'}"
            del env["TOKENLENS_REDIS_URL"]
        env.update(self.extra_env)
        return env

    def start(self) -> Stack:
        if not self.embedded:
            redis_argv = ["redis-server", "--port", str(self.redis_port), "--save", ""]
            redis_argv += ["--appendonly", "no"]
            self.redis = _spawn(redis_argv, {}, self.workdir / "redis.log")
            _postgres(self.database_url, f'CREATE DATABASE "{self.database}"')
        env = self.env()
        migrate = [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"]
        subprocess.run(migrate, cwd=ROOT, env=env, check=True)
        bin_dir = Path(sys.executable).parent
        for number, port in enumerate(self.ports):
            daphne = [str(bin_dir / "daphne"), "-b", "127.0.0.1", "-p", str(port)]
            daphne.append("tokenlens_site.asgi:application")
            log = self.workdir / f"web{number or ''}.log"
            self.processes.append(_spawn(daphne, env, log))
        self.worker_processes = []
        for number in range(self.workers):
            worker = [str(bin_dir / "celery"), "-A", "tokenlens_site", "worker", "-l", "info"]
            worker += ["--hostname", f"faults-{self.port}-{number}@%h"]
            log = self.workdir / f"worker{number or ''}.log"
            self.worker_processes.append(_spawn(worker, env, log))
        self.processes += self.worker_processes
        for url in self.urls:
            _wait_until_healthy(url, self.processes)
        if self.with_worker:
            wait_for_worker(env["TOKENLENS_REDIS_URL"], self.processes, count=self.workers)
        return self

    def stop_redis(self) -> None:
        _stop(self.redis)

    def stop(self) -> None:
        for process in [*self.processes, self.redis]:
            if process is not None:
                _stop(process)
        if not self.embedded:
            statement = f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'
            _postgres(self.database_url, statement)

    def connections(self) -> int | None:
        """Connections the server holds to this stack's database right now (None: SQLite)."""
        if self.embedded:
            return None
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as connection:
            query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
            return connection.execute(query, (self.database,)).fetchone()[0]


def call(url: str, method: str = "GET", payload=None, cookie: str = "", timeout: float = 120):
    """(status, JSON body or None, seconds, the cookies it set as one Cookie header)."""
    data = json.dumps(payload).encode() if payload is not None else None
    headers = {"Content-Type": "application/json"}
    if cookie:
        headers["Cookie"] = cookie
        csrf = [part.split("=", 1)[1] for part in cookie.split("; ") if part.startswith("csrf")]
        if csrf:
            headers["X-CSRFToken"] = csrf[0]
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body, answer_headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, body, answer_headers = error.code, error.read(), error.headers
    seconds = time.monotonic() - started
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    cookies = [value.split(";")[0] for value in answer_headers.get_all("Set-Cookie") or []]
    return status, parsed, seconds, "; ".join(cookies)


def visitor(stack: Stack) -> str:
    """A browser session's cookies (session and CSRF), as a page visit gives them."""
    return call(stack.url + "/explore/")[3]
