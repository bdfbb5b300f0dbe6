"""A live lesson under load: 30 followers on real websockets, the presenter generating 100 tokens.

Run: `make bench` (or .venv/bin/python bench/live.py [followers] [tokens]). Starts the app in
its embedded mode on a free port with a fresh SQLite database, makes an instructor, a lesson and
its exploration, starts a live session, joins N followers (each its own browser session and
websocket) and presses "Generate to the end". It measures:
- delivery latency per token and follower: when the follower's socket got the token, minus when
  the worker saved its step (the step's own compute is before that, so this is what the live
  relay adds: render once, channel layer, websocket), p50 and p95;
- the server's CPU time per event (from /proc): a presenter's change (selection) pushed to N
  followers, against the same change with nobody following; and a token with nobody following,
  for scale;
- a follower joining at 80 % of the tokens: the page, then its socket's catch-up frame.
Target: p95 ≤ 300 ms beyond the step time on this CPU.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORKDIR = Path(tempfile.mkdtemp(prefix="tokenlens-live-bench-"))
os.environ["TOKENLENS_DATABASE_URL"] = f"sqlite:///{WORKDIR / 'db.sqlite3'}"
for name in ("TOKENLENS_REDIS_URL",):
    os.environ.pop(name, None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenlens_site.settings")

import django  # noqa: E402
from quick import pick  # noqa: E402

django.setup()

import websockets  # noqa: E402
from django.conf import settings  # noqa: E402
from streaming import Client, start_server  # noqa: E402

FOLLOWERS = int(sys.argv[1]) if len(sys.argv) > 1 else pick(30, 3)
TOKENS = int(sys.argv[2]) if len(sys.argv) > 2 else pick(100, 8)
PROMPT = "Write a long story about a lighthouse keeper and the sea."
INDEX = re.compile(r'data-index="(\d+)"')
PASSWORD = "bench-password-1"
CHANGES = pick(50, 5)


def make_lesson():
    """An instructor and a lesson of three explorations of the default model: one to warm up
    on, one generated with nobody following, one the class follows."""
    from django.contrib.auth.models import Group, User

    from inspector.models import Branch, Exploration, Lesson, LessonItem

    user = User.objects.create_user("bench-instructor", password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="Instructor")[0])
    lesson = Lesson.objects.create(owner=user, title="Bench")
    items = []
    for position in range(3):
        exploration = Exploration.objects.create(
            owner=user,
            model_key=settings.TOKENLENS_DEFAULT_MODEL,
            prompt=PROMPT,
            use_chat_template=True,
            params={"temperature": 0, "seed": 0},
            max_new_tokens=TOKENS,
        )
        branch = Branch.objects.create(exploration=exploration, label="main")
        item = LessonItem.objects.create(lesson=lesson, exploration=exploration, position=position)
        items.append((item.pk, str(branch.pk)))
    return lesson, items


def sign_in(client: Client) -> None:
    client.request("GET", "/accounts/login/")
    client.post_form(
        "/accounts/login/", {"username": "bench-instructor", "password": PASSWORD, "next": "/"}
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def join(base: str, code: str, session_id: str):
    """A follower: its own browser session, the follow page, then its websocket."""
    client = Client(base)
    await asyncio.to_thread(client.request, "GET", f"/live/{code}/")
    cookies = "; ".join(f"{c.name}={c.value}" for c in client.jar)
    url = base.replace("http", "ws", 1) + f"/ws/live/{session_id}/"
    socket = await websockets.connect(
        url, additional_headers={"Cookie": cookies, "Origin": base}, max_size=None
    )
    await asyncio.wait_for(socket.recv(), timeout=60)  # the catch-up
    return socket


async def listen(socket, arrivals: dict, done: asyncio.Event) -> None:
    """Every token index this socket received, with the wall time it came."""
    while not done.is_set():
        try:
            frame = await asyncio.wait_for(socket.recv(), timeout=0.5)
        except TimeoutError:
            continue
        now = time.time()
        if 'id="tail-' in frame:
            for index in INDEX.findall(frame):
                arrivals.setdefault(int(index), now)


async def generate(presenter: Client, branch_id: str, watch=None) -> float:
    """Generate to the end; returns once the branch has every token (polling the database)."""
    from inspector.models import Branch

    await asyncio.to_thread(
        presenter.post_form, f"/branches/{branch_id}/generate/", {"delay_ms": 0}
    )
    branch = await asyncio.to_thread(Branch.objects.get, pk=branch_id)
    started = time.perf_counter()
    while True:
        length = await asyncio.to_thread(lambda: branch.length)
        if watch is not None:
            await watch(length)
        if length >= TOKENS or time.perf_counter() - started > 600:
            await asyncio.sleep(1)  # the last events in flight
            return time.perf_counter() - started
        await asyncio.sleep(0.05)


async def run(base: str, server: subprocess.Popen, lesson, items) -> dict:
    presenter = Client(base)
    await asyncio.to_thread(sign_in, presenter)
    live = await asyncio.to_thread(presenter.post_json, f"/api/v1/lessons/{lesson.pk}/live/", {})
    (_, warm_branch), (_, alone_branch), (followed_item, branch_id) = items

    await generate(presenter, warm_branch)  # warm: the model loads, nobody follows yet
    before = cpu_seconds(server.pid)
    await generate(presenter, alone_branch)  # not the class's branch: nothing is relayed
    alone_cpu = cpu_seconds(server.pid) - before
    state = f"/api/v1/live/{live['id']}/state/"
    await asyncio.to_thread(presenter.post_json, state, {"item": followed_item})
    nobody_cpu = await changes_cpu(presenter, state, server)

    sockets = [await join(base, live["code"], live["id"]) for _ in range(FOLLOWERS)]
    arrivals = [{} for _ in sockets]
    done = asyncio.Event()
    listeners = [
        asyncio.create_task(listen(socket, got, done))
        for socket, got in zip(sockets, arrivals, strict=True)
    ]
    followed_changes_cpu = await changes_cpu(presenter, state, server)
    late = {}

    async def late_join(length: int) -> None:
        if length >= int(TOKENS * 0.8) and "page_s" not in late:
            late["page_s"] = 0.0
            started = time.perf_counter()
            client = Client(base)
            html = await asyncio.to_thread(client.request, "GET", f"/live/{live['code']}/")
            late["page_s"] = time.perf_counter() - started
            late["tokens_on_page"] = len(INDEX.findall(html))
            cookies = "; ".join(f"{c.name}={c.value}" for c in client.jar)
            url = base.replace("http", "ws", 1) + f"/ws/live/{live['id']}/"
            headers = {"Cookie": cookies, "Origin": base}
            async with websockets.connect(url, additional_headers=headers) as socket:
                await asyncio.wait_for(socket.recv(), timeout=60)
            late["socket_s"] = time.perf_counter() - started
            late["at"] = length

    await generate(presenter, branch_id, late_join)
    done.set()
    await asyncio.gather(*listeners)
    for socket in sockets:
        await socket.close()
    return {
        "latencies": await asyncio.to_thread(saved_to_arrival, branch_id, arrivals),
        "missing": sum(TOKENS - len(got) for got in arrivals),
        "change_alone_ms": nobody_cpu * 1000,
        "change_followed_ms": followed_changes_cpu * 1000,
        "alone_cpu_per_token_ms": alone_cpu / TOKENS * 1000,
        "late": late,
    }


async def changes_cpu(presenter: Client, state: str, server: subprocess.Popen) -> float:
    """The server's CPU seconds per presenter change (a token selected), pushed to whoever
    follows now."""
    before = cpu_seconds(server.pid)
    for index in range(CHANGES):
        await asyncio.to_thread(presenter.post_json, state, {"selection": [index]})
    await asyncio.sleep(1)  # the last pushes
    return (cpu_seconds(server.pid) - before) / CHANGES


def saved_to_arrival(branch_id: str, arrivals: list[dict]) -> list[float]:
    from inspector.models import Step

    saved = {
        index: at.timestamp()
        for index, at in Step.objects.filter(branch_id=branch_id).values_list("index", "created_at")
    }
    return [
        (arrived - saved[index]) * 1000
        for got in arrivals
        for index, arrived in got.items()
        if index in saved
    ]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def main() -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        cwd=ROOT,
        env=dict(os.environ),
        check=True,
    )
    lesson, items = make_lesson()
    budget = str(10**9)
    base, server = start_server(
        os.environ["TOKENLENS_DATABASE_URL"],
        TOKENLENS_VISITOR_BUDGET=budget,
        TOKENLENS_COMPUTE_BUDGET=budget,
    )
    try:
        result = asyncio.run(run(base, server, lesson, items))
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies, late = result["latencies"], result["late"]
    print(
        f"Live lesson: {FOLLOWERS} followers on websockets, the presenter generating {TOKENS} "
        f"tokens ({settings.TOKENLENS_DEFAULT_MODEL}, greedy), embedded server, one run."
    )
    print()
    print("| measure | value | target |")
    print("| --- | ---: | --- |")
    print(
        f"| delivery after the step is saved, p50 / p95 | {statistics.median(latencies):.0f} / "
        f"{percentile(latencies, 0.95):.0f} ms ({len(latencies)} deliveries, "
        f"{result['missing']} missing) | p95 ≤ 300 ms |"
    )
    fan_out = result["change_followed_ms"] - result["change_alone_ms"]
    print(
        f"| server CPU per presenter change: {FOLLOWERS} following / nobody | "
        f"{result['change_followed_ms']:.1f} / {result['change_alone_ms']:.1f} ms "
        f"(fan-out {fan_out:.1f} ms, {fan_out / FOLLOWERS * 1000:.0f} µs a follower) | |"
    )
    print(
        f"| server CPU per generated token, nobody following (for scale) | "
        f"{result['alone_cpu_per_token_ms']:.1f} ms | |"
    )
    if late:
        print(
            f"| a follower joining at token {late['at']}: page / socket caught up | "
            f"{late['page_s'] * 1000:.0f} / {late['socket_s'] * 1000:.0f} ms "
            f"({late['tokens_on_page']} tokens on the page) | the exact state at once |"
        )


if __name__ == "__main__":
    main()
