"""The production-like stack started from its entry points (daphne, a Celery worker, our own
Redis server on a free port, our own PostgreSQL database) and probed as the fault probe did:
idle websockets stay up, no worker means a 503 at once, and 16 clients stepping together hold
a bounded number of database connections and get no 5xx."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
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
