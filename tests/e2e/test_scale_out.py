"""Scaling out on Celery, Redis and PostgreSQL: two daphne processes and two worker processes of
one model, started from their entry points. Each exploration's steps go to the worker that
holds its key/value caches; when that worker dies its explorations move to the other one (a
cache miss, never an error); a page connected to one web process sees steps made through the
other."""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import os
import re
import signal
import socket
import time

import pytest

from inspector.compute.routing import choose_worker
from tests.e2e.stack import Stack, call, visitor

pytestmark = [pytest.mark.e2e, pytest.mark.services, pytest.mark.model]
SMOL = "smollm2-135m-instruct"
# API steps run as step_and_reply (answered later), other step work as compute.
STEP_RESULT = re.compile(
    r"Task tokenlens\.(?:compute|step_and_reply)\[[^\]]+\] succeeded in [\d.]+s: (\{.*\})$"
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = Stack(
        tmp_path_factory.mktemp("scale"),
        with_worker=True,
        workers=2,
        webs=2,
        TOKENLENS_WORKER_MODELS=SMOL,
    ).start()
    try:
        yield running
    finally:
        running.stop()


def _exploration(stack: Stack, url: str | None = None) -> tuple[str, str, str]:
    """(branch id, session cookie, exploration id) of a fresh visitor's exploration."""
    cookie = visitor(stack)
    payload = {"model": SMOL, "prompt": "Once upon a time", "max_new_tokens": 200}
    status, body, _, _ = call((url or stack.url) + "/api/v1/explorations/", "POST", payload, cookie)
    assert status == 201, body
    return body["branches"][0]["id"], cookie, body["id"]


def _step(stack: Stack, branch_id: str, cookie: str, url: str | None = None) -> int:
    path = f"/api/v1/branches/{branch_id}/steps/"
    return call((url or stack.url) + path, "POST", {"mode": "greedy"}, cookie)[0]


def _worker_name(process) -> str:
    return f"{socket.gethostname()}:{process.pid}"


def _steps_seen(stack: Stack) -> dict[str, list[tuple[str, int]]]:
    """branch id → [(worker name, tokens it ran for the step)], from the workers' logs."""
    seen: dict[str, list[tuple[str, int]]] = {}
    for number, process in enumerate(stack.worker_processes):
        log = stack.workdir / f"worker{number or ''}.log"
        for line in log.read_text().splitlines():
            match = STEP_RESULT.search(line)
            result = ast.literal_eval(match.group(1)).get("result", {}) if match else {}
            if "step_ids" in result:
                entry = (_worker_name(process), result["_computed_tokens"])
                seen.setdefault(result["branch"], []).append(entry)
    return seen


def _live(stack: Stack) -> list[str]:
    import redis

    from inspector.compute.heartbeat import HEARTBEAT_TTL_SECONDS, WORKERS_KEY

    client = redis.Redis.from_url(stack.env()["TOKENLENS_REDIS_URL"])
    since = time.time() - HEARTBEAT_TTL_SECONDS
    return [name.decode() for name in client.zrangebyscore(WORKERS_KEY, since, "+inf")]


def test_each_exploration_stays_on_the_worker_holding_its_cache_until_that_worker_dies(stack):
    explorations = [_exploration(stack) for _ in range(6)]
    for branch_id, cookie, _ in explorations:
        for _ in range(4):
            assert _step(stack, branch_id, cookie) == 201
    names = [_worker_name(process) for process in stack.worker_processes]
    seen = _steps_seen(stack)
    for branch_id, _, exploration_id in explorations:
        workers = {worker for worker, _ in seen[branch_id]}
        assert workers == {choose_worker(names, exploration_id)}, seen[branch_id]
        assert [tokens for _, tokens in seen[branch_id]][1:] == [1, 1, 1]  # cache hits

    # The worker holding the first exploration dies; its heartbeat lapses; the other takes over.
    branch_id, cookie, exploration_id = explorations[0]
    holder = choose_worker(names, exploration_id)
    dying = next(p for p in stack.worker_processes if _worker_name(p) == holder)
    os.killpg(dying.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while holder in _live(stack) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert holder not in _live(stack)
    assert _step(stack, branch_id, cookie) == 201
    assert _step(stack, branch_id, cookie) == 201
    (survivor,) = set(names) - {holder}
    # The logs are read worker by worker, not in time order: split the branch's steps by worker.
    seen = _steps_seen(stack)[branch_id]
    assert [worker for worker, _ in seen].count(holder) == 4, seen  # nothing after it died
    taken_over = [entry for entry in seen if entry[0] == survivor]
    assert len(taken_over) == 2, seen
    first, second = (tokens for _, tokens in taken_over)
    assert first > 1 and second == 1  # one cache miss (the prefix read again), then hits


def test_a_page_on_one_web_process_sees_steps_made_through_the_other(stack):
    import websockets

    first_web, second_web = stack.urls
    branch_id, cookie, exploration_id = _exploration(stack, first_web)
    ws_url = second_web.replace("http", "ws") + f"/ws/explorations/{exploration_id}/"

    async def follow() -> str:
        headers = {"Origin": second_web, "Cookie": cookie}
        async with websockets.connect(ws_url, additional_headers=headers) as page:
            assert 'id="reply-to"' in await page.recv()  # the channel steps answer to
            stepped = asyncio.get_running_loop().run_in_executor(
                None, lambda: _step(stack, branch_id, cookie, first_web)
            )
            message = await asyncio.wait_for(page.recv(), timeout=60)
            assert await stepped == 201
            return message

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        message = pool.submit(asyncio.run, follow()).result(timeout=120)
    assert f"tokens-{branch_id}" in message or "new-tokens" in message or "gen b" in message


_MAKE_CLASS = """
from django.contrib.auth.models import Group, User
from django.test import Client
from inspector.models import Branch, Exploration, Lesson, LessonItem
user = User.objects.create_user("live-teacher")
user.groups.add(Group.objects.get_or_create(name="Instructor")[0])
exploration = Exploration.objects.create(owner=user, model_key="%s", prompt="Once upon a time")
branch = Branch.objects.create(exploration=exploration, label="main")
lesson = Lesson.objects.create(owner=user, title="Live")
LessonItem.objects.create(lesson=lesson, exploration=exploration)
client = Client()
client.force_login(user)
print(lesson.pk, branch.pk, client.cookies["sessionid"].value)
"""


def test_a_live_follower_on_one_web_process_hears_the_presenter_on_the_other(stack):
    import subprocess
    import sys

    import websockets

    from tests.e2e.conftest import ROOT

    made = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", _MAKE_CLASS % SMOL],
        cwd=ROOT,
        env=stack.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    lesson_id, branch_id, session_key = made.stdout.split()[-3:]
    first_web, second_web = stack.urls
    teacher = f"sessionid={session_key}"
    teacher += "; " + call(first_web + "/explore/", cookie=teacher)[3]
    status, live, _, _ = call(f"{first_web}/api/v1/lessons/{lesson_id}/live/", "POST", {}, teacher)
    assert status == 201, live
    follower = visitor(stack)
    assert call(f"{second_web}/live/{live['code']}/", cookie=follower)[0] == 200

    async def follow() -> str:
        ws_url = second_web.replace("http", "ws") + f"/ws/live/{live['id']}/"
        headers = {"Origin": second_web, "Cookie": follower}
        async with websockets.connect(ws_url, additional_headers=headers) as page:
            assert 'id="live-state"' in await page.recv()  # the catch-up
            stepped = asyncio.get_running_loop().run_in_executor(
                None, lambda: _step(stack, branch_id, teacher, first_web)
            )
            message = await asyncio.wait_for(page.recv(), timeout=60)
            assert await stepped == 201
            return message

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        message = pool.submit(asyncio.run, follow()).result(timeout=120)
    assert f'id="tail-{branch_id}-0"' in message and 'data-index="0"' in message
