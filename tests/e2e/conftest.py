"""The real app as a user gets it: daphne (and, in services mode, a Celery worker process)
started from the project's own entry points, driven by Debian's Chromium through Playwright."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest

from tests.conftest import require_env

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "test-artifacts"  # failure screenshots and server logs
# For a browser test of the page alone (layout, keys, local storage): the server side it
# drives is the same in both modes and is tested in both elsewhere.
PAGE_ONLY = pytest.mark.parametrize("app_server", ["embedded"], indirect=True)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SERVICE_VARS = ("TOKENLENS_DATABASE_URL", "TOKENLENS_REDIS_URL")


@dataclass
class RunningApp:
    mode: str
    url: str
    env: dict

    def post_json(self, path: str, payload: dict) -> tuple[int, dict]:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_healthy(url: str, processes: list, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args[:3]} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not become healthy within {timeout} s")


def wait_for_worker(redis_url: str, processes: list, timeout: float = 90, count: int = 1) -> None:
    """Until `count` Celery workers have sent their first heartbeat (the web answers 503
    before that)."""
    import redis

    from inspector.compute.heartbeat import WORKERS_KEY

    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args[:3]} exited with {process.returncode}")
        if client.zcard(WORKERS_KEY) >= count:
            return
        time.sleep(0.3)
    raise RuntimeError(f"no worker reported in within {timeout} s")


def _with_database(url: str, name: str) -> str:
    return urlunparse(urlparse(url)._replace(path=f"/{name}"))


def _postgres(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(statement)


def _spawn(argv: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="session", params=["embedded", "services"])
def app_server(request, tmp_path_factory):
    """The app on a free port: embedded default, or PostgreSQL + Redis + a Celery worker."""
    mode = request.param
    workdir = tmp_path_factory.mktemp(f"app-{mode}")
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    # Many tests share one server and one address: the compute budget is not what they test.
    env.update(DEBUG="true", PYTHONUNBUFFERED="1", TOKENLENS_VISITOR_BUDGET=str(10**9))
    env["TOKENLENS_COMPUTE_BUDGET"] = str(10**9)
    database_name = None
    if mode == "embedded":
        env["TOKENLENS_DATABASE_URL"] = f"sqlite:///{workdir / 'db.sqlite3'}"
    else:
        database_url = require_env("TOKENLENS_DATABASE_URL")
        redis_url = require_env("TOKENLENS_REDIS_URL")
        database_name = f"tokenlens_e2e_{uuid.uuid4().hex[:8]}"
        _postgres(database_url, f'CREATE DATABASE "{database_name}"')
        env["TOKENLENS_DATABASE_URL"] = _with_database(database_url, database_name)
        database = os.environ.get("TOKENLENS_E2E_REDIS_DB", "2")  # tests/parallel.py
        env["TOKENLENS_REDIS_URL"] = urlunparse(urlparse(redis_url)._replace(path=f"/{database}"))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    processes = [
        _spawn(
            [
                str(bin_dir / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "tokenlens_site.asgi:application",
            ],
            env,
            workdir / "web.log",
        )
    ]
    if mode == "services":
        processes.append(
            _spawn(
                [
                    str(bin_dir / "celery"),
                    "-A",
                    "tokenlens_site",
                    "worker",
                    "--loglevel=info",
                    "--hostname",
                    f"e2e-{port}@%h",
                ],
                env,
                workdir / "worker.log",
            )
        )
    app = RunningApp(mode, f"http://127.0.0.1:{port}", env)
    try:
        _wait_until_healthy(app.url, processes)
        if mode == "services":
            wait_for_worker(env["TOKENLENS_REDIS_URL"], processes)
        yield app
    finally:
        for process in processes:
            _stop(process)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for log in workdir.glob("*.log"):
            shutil.copy(log, ARTIFACTS / f"{mode}-{log.name}")
        if database_name:
            _postgres(
                require_env("TOKENLENS_DATABASE_URL"),
                f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)',
            )


@pytest.fixture(scope="session")
def chromium():
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: run `make browser` (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    # A first model load in a fresh server process takes seconds, not milliseconds.
    expect.set_options(timeout=60_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        playwrights_loop = asyncio._get_running_loop()  # see pytest_runtest_protocol
        yield browser
        asyncio._set_running_loop(playwrights_loop)  # whichever test ends the session
        browser.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(chromium, request):
    """A fresh browser context per test; a screenshot of the page is kept when the test fails."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in request.node.nodeid)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()
