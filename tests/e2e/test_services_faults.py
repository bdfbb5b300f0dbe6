"""The production-like stack started from its entry points (daphne, a Celery worker, our own
Redis server on a free port, our own PostgreSQL database) and probed as the fault probe did:
idle websockets stay up, no worker means a 503 at once, and 16 clients stepping together hold
a bounded number of database connections and get no 5xx."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

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

pytestmark = [pytest.mark.e2e, pytest.mark.services, pytest.mark.model]
SMOL = "smollm2-135m-instruct"
POOL_SIZE = 4


class Stack:
    def __init__(self, workdir: Path, with_worker: bool):
        self.workdir = workdir
        self.database_url = require_env("TOKENLENS_DATABASE_URL")
        self.database = f"tokenlens_faults_{uuid.uuid4().hex[:8]}"
        self.redis_port = _free_port()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.with_worker = with_worker
        self.processes: list[subprocess.Popen] = []

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENLENS_")}
        env.update(
            DEBUG="false",
            SECRET_KEY="faults-" + "x" * 60,
            PYTHONUNBUFFERED="1",
            TOKENLENS_DATABASE_URL=_with_database(self.database_url, self.database),
            TOKENLENS_REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            TOKENLENS_DB_POOL_SIZE=str(POOL_SIZE),
            TOKENLENS_GENERATION_RATE="10000/m",
            TOKENLENS_VISITOR_BUDGET=str(10**9),
            TOKENLENS_MODEL_CACHE=os.environ.get(
                "TOKENLENS_MODEL_CACHE", str(ROOT / "var" / "models")
            ),
        )
        return env

    def start(self) -> Stack:
        redis_argv = ["redis-server", "--port", str(self.redis_port), "--save", ""]
        self.redis = _spawn([*redis_argv, "--appendonly", "no"], {}, self.workdir / "redis.log")
        _postgres(self.database_url, f'CREATE DATABASE "{self.database}"')
        env = self.env()
        migrate = [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"]
        subprocess.run(migrate, cwd=ROOT, env=env, check=True)
        bin_dir = Path(sys.executable).parent
        daphne = [str(bin_dir / "daphne"), "-b", "127.0.0.1", "-p", str(self.port)]
        daphne.append("tokenlens_site.asgi:application")
        self.processes.append(_spawn(daphne, env, self.workdir / "web.log"))
        if self.with_worker:
            worker = [str(bin_dir / "celery"), "-A", "tokenlens_site", "worker", "--pool=solo"]
            worker += ["--hostname", f"faults-{self.port}@%h"]
            self.processes.append(_spawn(worker, env, self.workdir / "worker.log"))
        _wait_until_healthy(self.url, self.processes)
        if self.with_worker:
            wait_for_worker(env["TOKENLENS_REDIS_URL"], self.processes)
        return self

    def stop(self) -> None:
        for process in [*self.processes, self.redis]:
            _stop(process)
        _postgres(self.database_url, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def connections(self) -> int:
        """Connections the server holds to this stack's database right now."""
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


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("faults"), with_worker=True).start()
    try:
        yield running
    finally:
        running.stop()


def _exploration(stack: Stack) -> tuple[str, str, str]:
    """(branch id, session cookie, exploration id) of a fresh visitor's exploration."""
    cookie = visitor(stack)
    status, body, _, _ = call(
        stack.url + "/api/v1/explorations/",
        "POST",
        {"model": SMOL, "prompt": "Once upon a"},
        cookie,
    )
    assert status == 201, body
    return body["branches"][0]["id"], cookie, body["id"]


def test_an_idle_websocket_stays_up_and_still_delivers(stack):
    import websockets

    branch_id, cookie, exploration_id = _exploration(stack)
    ws_url = stack.url.replace("http", "ws") + f"/ws/explorations/{exploration_id}/"

    async def follow() -> str:
        headers = {"Origin": stack.url, "Cookie": cookie}
        async with websockets.connect(ws_url, additional_headers=headers) as socket:
            await asyncio.sleep(13)  # idle: more than twice the 5-6 s after which it dropped
            stepped = asyncio.get_running_loop().run_in_executor(
                None,
                lambda: call(
                    stack.url + f"/api/v1/branches/{branch_id}/steps/", "POST", {}, cookie
                ),
            )
            message = await asyncio.wait_for(socket.recv(), timeout=60)
            assert (await stepped)[0] == 201
            return message

    message = asyncio.run(follow())
    assert f"tokens-{branch_id}" in message or "new-tokens" in message or "gen b" in message


def test_sixteen_clients_stepping_hold_a_bounded_number_of_connections(stack):
    clients = [_exploration(stack)[:2] for _ in range(16)]
    statuses: list[int] = []
    peak = [0]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], stack.connections())
            time.sleep(0.1)

    def student(branch_id, cookie):
        for _ in range(3):
            url = stack.url + f"/api/v1/branches/{branch_id}/steps/"
            statuses.append(call(url, "POST", {"mode": "greedy"}, cookie)[0])

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=student, args=client) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    done.set()
    watcher.join()
    assert statuses.count(201) == 48, sorted(set(statuses))
    # The web process's pool and the worker's pool, nothing per thread.
    assert peak[0] <= 2 * POOL_SIZE, peak[0]


def test_with_no_worker_alive_the_api_answers_503_at_once(tmp_path):
    lonely = Stack(tmp_path, with_worker=False).start()
    try:
        status, body, seconds, _ = call(
            lonely.url + "/api/v1/tokenize/", "POST", {"model": SMOL, "text": "Hi"}
        )
        assert status == 503 and seconds < 2, (status, body, seconds)
        assert "No worker is running" in body["error"]["message"]
        status, body, seconds, _ = call(
            lonely.url + "/api/v1/explorations/", "POST", {"model": SMOL, "prompt": "Hi"}
        )
        assert status == 503 and seconds < 2
    finally:
        lonely.stop()


def test_with_redis_gone_the_api_answers_json_503_and_saved_work_stays(tmp_path):
    stack = Stack(tmp_path, with_worker=True).start()
    try:
        branch_id, cookie, _ = _exploration(stack)
        assert (
            call(stack.url + f"/api/v1/branches/{branch_id}/steps/", "POST", {}, cookie)[0] == 201
        )
        _stop(stack.redis)
        for path, method, payload in (
            (f"/api/v1/branches/{branch_id}/steps/", "POST", {}),
            ("/api/v1/tokenize/", "POST", {"model": SMOL, "text": "Hi"}),
            ("/api/v1/explorations/", "POST", {"model": SMOL, "prompt": "Hi"}),
        ):
            status, body, seconds, _ = call(stack.url + path, method, payload, cookie)
            assert status == 503 and seconds < 2, (path, status, body, seconds)
            assert set(body["error"]) == {"field", "message"}
        status, body, seconds, _ = call(stack.url + f"/api/v1/branches/{branch_id}/", cookie=cookie)
        assert status == 200 and len(body["steps"]) == 1 and seconds < 2
        page = urllib.request.Request(stack.url + "/explore/", headers={"Cookie": cookie})
        with urllib.request.urlopen(page, timeout=10) as response:
            assert 'id="redis-banner"' in response.read().decode()
    finally:
        stack.stop()
