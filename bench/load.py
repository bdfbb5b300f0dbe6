"""A classroom's load on the production-like stack: N visitors step their own branches at once.

Run: `make bench` (or .venv/bin/python bench/load.py [clients ...], default 16 64). Needs a
PostgreSQL server (TOKENLENS_DATABASE_URL, default the local one); starts its own Redis server
on a free port, its own database, daphne (DEBUG off) and one Celery worker, all on loopback.
Each client is a visitor with its own exploration who takes STEPS greedy steps and reads its
branch after each. Bounded: a fixed number of requests, each with a timeout. Prints errors by
status and the most database connections the server held during the run (web + worker pools).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenlens_site.settings")

import django  # noqa: E402
from quick import pick  # noqa: E402

django.setup()

from tests.e2e.stack import Stack, call, visitor  # noqa: E402

SMOL = "smollm2-135m-instruct"
STEPS = pick(3, 1)
POOL_SIZE = 8  # the default TOKENLENS_DB_POOL_SIZE
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/test"


def _explorations(stack: Stack, count: int) -> list[tuple[str, str]]:
    clients = []
    for _ in range(count):
        cookie = visitor(stack)
        payload = {"model": SMOL, "prompt": "Once upon a time"}
        status, body, _, _ = call(stack.url + "/api/v1/explorations/", "POST", payload, cookie)
        if status != 201:
            raise RuntimeError(f"could not create an exploration: {status} {body}")
        clients.append((body["branches"][0]["id"], cookie))
    return clients


def run_class(stack: Stack, count: int) -> dict:
    clients = _explorations(stack, count)
    statuses: Counter = Counter()
    lock = threading.Lock()
    peak = [stack.connections()]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], stack.connections())
            time.sleep(0.05)

    def student(branch_id: str, cookie: str):
        for _ in range(STEPS):
            url = stack.url + f"/api/v1/branches/{branch_id}/"
            answers = [call(url + "steps/", "POST", {"mode": "greedy"}, cookie, timeout=300)[0]]
            answers.append(call(url, cookie=cookie, timeout=60)[0])
            with lock:
                statuses.update(answers)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    threads = [threading.Thread(target=student, args=client) for client in clients]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    wall = time.monotonic() - started
    done.set()
    watcher.join()
    return {"clients": count, "statuses": statuses, "peak": peak[0], "wall": wall}


def _row(result: dict) -> str:
    statuses = result["statuses"]
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    errors = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()) if status >= 300)
    steps = statuses.get(201, 0)
    return (
        f"| {result['clients']} | {sum(statuses.values())} | {ok} | {errors or 'none'} | "
        f"{result['peak']} | {2 * POOL_SIZE} | {result['wall']:.1f} | "
        f"{steps / result['wall']:.1f} |"
    )


def main(levels: list[int]) -> int:
    database_url = os.environ.get("TOKENLENS_DATABASE_URL", DEFAULT_DATABASE)
    if not database_url.startswith("postgres"):
        print(f"bench/load.py needs PostgreSQL (TOKENLENS_DATABASE_URL), got {database_url!r}")
        return 2
    with tempfile.TemporaryDirectory() as workdir:
        stack = Stack(Path(workdir), True, database_url, TOKENLENS_DB_POOL_SIZE=POOL_SIZE).start()
        try:
            results = [run_class(stack, count) for count in levels]
        finally:
            stack.stop()
    print(f"Each client: {STEPS} greedy steps (POST) and a branch read (GET) after each.")
    print(
        "| clients | requests | 2xx | errors by status | peak DB connections | pools' limit "
        "(web + worker) | wall s | steps/s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for result in results:
        print(_row(result))
    return 0


if __name__ == "__main__":
    sys.exit(main([int(arg) for arg in sys.argv[1:]] or pick([16, 64], [4])))
