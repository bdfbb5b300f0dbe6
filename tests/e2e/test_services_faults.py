"""The production-like stack started from its entry points (daphne, a Celery worker, our own
Redis server on a free port, our own PostgreSQL database) and probed as the fault probe did:
idle websockets stay up, no worker means a 503 at once, and 16 clients stepping together hold
a bounded number of database connections and get no 5xx."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import signal
import threading
import time
import urllib.parse
import urllib.request

import pytest

from tests.e2e.stack import POOL_SIZE, Stack, call, visitor

pytestmark = [pytest.mark.e2e, pytest.mark.services, pytest.mark.model]
SMOL = "smollm2-135m-instruct"


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
            assert 'id="reply-to"' in await socket.recv()  # the channel steps answer to
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

    # In a thread of its own: the browser tests' driver keeps an event loop in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        message = pool.submit(asyncio.run, follow()).result(timeout=120)
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


def _post_step(stack: Stack, branch_id: str, cookie: str, reply_to: str) -> tuple[int, str]:
    """A page's Step button (htmx) with its websocket's channel: (status, the step's id)."""
    csrf = next(part.split("=", 1)[1] for part in cookie.split("; ") if part.startswith("csrf"))
    form = urllib.parse.urlencode({"mode": "greedy", "reply_to": reply_to}).encode()
    headers = {"Cookie": cookie, "X-CSRFToken": csrf, "HX-Request": "true"}
    url = stack.url + f"/branches/{branch_id}/step/"
    request = urllib.request.Request(url, data=form, method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.headers.get("TokenLens-Step", "")


def _threads(process) -> int:
    return len(os.listdir(f"/proc/{process.pid}/task"))


def test_64_pages_waiting_for_their_steps_hold_no_thread_and_no_connection(stack):
    """64 students press Step while the worker is frozen (SIGSTOP): every request is answered
    at once (202) and the web process holds neither a thread nor a database connection for
    any of them; when the worker goes on, every page hears its own answer on its websocket."""
    import websockets

    students = [_exploration(stack) for _ in range(64)]
    web, worker = stack.processes[0], stack.worker_processes[0]
    ws_base = stack.url.replace("http", "ws")

    async def classroom() -> tuple[list[str], list[str], dict]:
        sockets = []
        for _, cookie, exploration_id in students:
            headers = {"Origin": stack.url, "Cookie": cookie}
            url = ws_base + f"/ws/explorations/{exploration_id}/"
            sockets.append(await websockets.connect(url, additional_headers=headers))
        channels = [re.search(r'value="([^"]+)"', await s.recv()).group(1) for s in sockets]
        loop = asyncio.get_running_loop()
        idle = {"threads": _threads(web), "connections": stack.connections()}
        worker.send_signal(signal.SIGSTOP)
        try:
            posted = [
                await loop.run_in_executor(None, _post_step, stack, branch_id, cookie, channel)
                for (branch_id, cookie, _), channel in zip(students, channels, strict=True)
            ]
            await asyncio.sleep(1)
            waiting = {"threads": _threads(web), "connections": stack.connections()}
        finally:
            worker.send_signal(signal.SIGCONT)
        answers = await asyncio.gather(*(_answer(s) for s in sockets))
        for socket in sockets:
            await socket.close()
        assert [status for status, _ in posted] == [202] * 64
        return [asked for _, asked in posted], answers, {"idle": idle, "waiting": waiting}

    async def _answer(socket) -> str:
        while "data-answered" not in (message := await asyncio.wait_for(socket.recv(), 120)):
            pass
        return message

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        asked, answers, held = pool.submit(asyncio.run, classroom()).result(timeout=400)
    assert held["waiting"]["threads"] <= held["idle"]["threads"] + 4, held
    assert held["waiting"]["connections"] <= held["idle"]["connections"] + 2, held
    for step_id, answer in zip(asked, answers, strict=True):
        assert f'data-answered="{step_id}"' in answer and 'data-action="step"' in answer
        assert 'role="alert"' not in answer, answer
    for branch_id, cookie, _ in students:
        status, body, _, _ = call(stack.url + f"/api/v1/branches/{branch_id}/", cookie=cookie)
        assert status == 200 and body["length"] == 1, body


def _queued_tasks(stack: Stack) -> int:
    """Messages waiting in the stack's Celery queues (Redis lists named tokenlens.…)."""
    import redis

    client = redis.Redis(port=stack.redis_port)
    names = [name for name in client.scan_iter("tokenlens.*") if client.type(name) == b"list"]
    return sum(client.llen(name) for name in names)


def test_64_api_steps_waiting_for_the_model_hold_no_thread_and_no_connection(stack):
    """64 scripts POST a step while the worker is frozen: every step is queued, and the web
    process holds neither a thread nor a database connection for any of them while they wait
    (inspector.explorations.answered_later); when the worker goes on, each gets its 201 with
    its step."""
    students = [_exploration(stack)[:2] for _ in range(64)]
    web, worker = stack.processes[0], stack.worker_processes[0]
    idle = {"threads": _threads(web), "connections": stack.connections()}
    worker.send_signal(signal.SIGSTOP)
    try:
        with concurrent.futures.ThreadPoolExecutor(64) as clients:
            answers = [
                clients.submit(
                    call, stack.url + f"/api/v1/branches/{branch}/steps/", "POST", {}, cookie
                )
                for branch, cookie in students
            ]
            deadline = time.monotonic() + 60
            # The frozen worker's pending BRPOP takes the first message: 63 stay in the list.
            while _queued_tasks(stack) < 63 and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(0.5)
            waiting = {
                "queued": _queued_tasks(stack),
                "threads": _threads(web),
                "connections": stack.connections(),
                "answered": sum(answer.done() for answer in answers),
            }
            worker.send_signal(signal.SIGCONT)
            answered = [answer.result(timeout=240) for answer in answers]
    finally:
        worker.send_signal(signal.SIGCONT)
    assert waiting["queued"] >= 63 and waiting["answered"] == 0, waiting
    assert waiting["threads"] <= idle["threads"] + 4, (idle, waiting)
    assert waiting["connections"] <= idle["connections"] + 2, (idle, waiting)
    for status, body, _, _ in answered:
        assert status == 201 and [step["index"] for step in body["steps"]] == [0], body


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


def test_with_redis_gone_the_api_answers_json_503_and_saved_work_stays(stack):
    """The module's last test: it stops the stack's Redis."""
    branch_id, cookie, _ = _exploration(stack)
    assert call(stack.url + f"/api/v1/branches/{branch_id}/steps/", "POST", {}, cookie)[0] == 201
    stack.stop_redis()
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
    # The banner follows a status checked at most every 3 s (services.redis_status).
    page = urllib.request.Request(stack.url + "/explore/", headers={"Cookie": cookie})
    deadline = time.monotonic() + 6
    while True:
        with urllib.request.urlopen(page, timeout=10) as response:
            html = response.read().decode()
        if 'id="redis-banner"' in html or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert 'id="redis-banner"' in html
