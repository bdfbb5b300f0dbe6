"""Streaming as a user sees it: generate to the end on a running server, tokens over the websocket.

Run: `make bench` (or .venv/bin/python bench/streaming.py [model-key]). Starts the app in its
embedded mode on a free port (or uses TOKENLENS_BENCH_URL if set), creates an exploration,
presses "Generate to the end" and times the websocket frames; then runs bare `model.generate`
for the same number of tokens in this process. Prints a markdown table; read the ratios.
Targets: ≥ 0.85× bare generate; warm time to first token ≤ one forward step + 50 ms.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenlens_site.settings")

import django  # noqa: E402
from quick import pick  # noqa: E402

django.setup()

import torch  # noqa: E402
import websockets  # noqa: E402
from django.conf import settings  # noqa: E402

from engine.distribution import next_token_logits, prompt_ids  # noqa: E402
from engine.loading import build_catalog, load, pick_device  # noqa: E402

NEW_TOKENS = pick(128, 8)
PROMPT = "Write a long story about a lighthouse keeper and the sea."
TOKEN_SPAN = re.compile(r'class="gen b\d')


class Client:
    """A browser-like HTTP client: cookies (session, CSRF) kept between requests."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name: str) -> str:
        return next((c.value for c in self.jar if c.name == name), "")

    def request(self, method: str, path: str, body: bytes | None = None, headers=None):
        request = urllib.request.Request(
            self.base + path, data=body, method=method, headers=headers or {}
        )
        with self.opener.open(request, timeout=300) as response:
            return response.read().decode()

    def post_json(self, path: str, payload: dict) -> dict:
        """An API call as the page makes it: the session's CSRF token with the body."""
        headers = {
            "Content-Type": "application/json",
            "X-CSRFToken": self.cookie("csrftoken"),
            "Referer": self.base + "/explore/",
        }
        return json.loads(self.request("POST", path, json.dumps(payload).encode(), headers))

    def post_form(self, path: str, fields: dict) -> str:
        body = urllib.parse.urlencode(fields).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-CSRFToken": self.cookie("csrftoken"),
            "HX-Request": "true",
            "Referer": self.base + "/explore/",
        }
        return self.request("POST", path, body, headers)


def start_server(database_url: str = "", **extra_env) -> tuple[str, subprocess.Popen | None]:
    """The embedded app on a free port (its SQLite database in a fresh folder unless
    `database_url` names one, migrated by the caller then); TOKENLENS_BENCH_URL instead if set."""
    if os.environ.get("TOKENLENS_BENCH_URL"):
        return os.environ["TOKENLENS_BENCH_URL"].rstrip("/"), None
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = Path(tempfile.mkdtemp(prefix="tokenlens-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENLENS_")}
    env.update(
        TOKENLENS_DATABASE_URL=database_url or f"sqlite:///{workdir / 'db.sqlite3'}",
        TOKENLENS_MODEL_CACHE=str(settings.TOKENLENS_MODEL_CACHE),
        **extra_env,
    )
    if not database_url:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
        )
    daphne = str(Path(sys.executable).parent / "daphne")
    server = subprocess.Popen(
        [daphne, "-b", "127.0.0.1", "-p", str(port), "tokenlens_site.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=(workdir / "web.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=2)
            return base, server
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("the server did not start")


async def generate_over_websocket(client: Client, model: str) -> dict:
    """Create an exploration, open its websocket, press Generate, time the frames."""
    client.request("GET", "/explore/")  # session + CSRF cookies
    exploration = client.post_json(
        "/api/v1/explorations/",
        {
            "model": model,
            "prompt": PROMPT,
            "use_chat_template": uses_chat_template(model),
            "params": {"temperature": 0},
            "max_new_tokens": NEW_TOKENS,
        },
    )
    branch = exploration["branches"][0]["id"]
    ws_url = client.base.replace("http", "ws", 1) + f"/ws/explorations/{exploration['id']}/"
    cookies = "; ".join(f"{c.name}={c.value}" for c in client.jar)
    headers = {"Cookie": cookies, "Origin": client.base}
    async with websockets.connect(ws_url, additional_headers=headers, max_size=None) as socket:
        started = time.perf_counter()
        await asyncio.to_thread(client.post_form, f"/branches/{branch}/generate/", {"delay_ms": 0})
        first = None
        while True:
            frame = await asyncio.wait_for(socket.recv(), timeout=300)
            if 'id="branch-actions"' in frame:  # the end: the whole token list comes with it
                tokens = len(TOKEN_SPAN.findall(frame))
                break
            if first is None and TOKEN_SPAN.search(frame):
                first = time.perf_counter() - started
        total = time.perf_counter() - started
    return {"tokens": tokens, "first_s": first, "total_s": total}


def uses_chat_template(model: str) -> bool:
    """Chat models answer a chat turn (plain text makes an instruct model stop at once)."""
    return model == "smollm2-135m-instruct"


def one_step_seconds(loaded, ids: list[int]) -> float:
    """The forward step the first token needs: reading the prompt (median of 3)."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        next_token_logits(loaded, ids)
        times.append(time.perf_counter() - start)
    return sorted(times)[1]


def bare_generate(loaded, ids: list[int], tokens: int) -> float:
    with torch.inference_mode():
        start = time.perf_counter()
        loaded.model.generate(
            torch.tensor([ids]), max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False
        )
        return time.perf_counter() - start


def main(model: str) -> None:
    base, server = start_server()
    try:
        client = Client(base)
        asyncio.run(generate_over_websocket(client, model))  # cold: loads the model
        warm = asyncio.run(generate_over_websocket(client, model))
    finally:
        if server:
            server.terminate()
            server.wait(timeout=30)
    loaded = load(build_catalog()[model], settings.TOKENLENS_MODEL_CACHE, pick_device())
    ids = prompt_ids(loaded, PROMPT, None, uses_chat_template(model))
    bare_s = bare_generate(loaded, ids, warm["tokens"])
    step_s = one_step_seconds(loaded, ids)
    bare_rate = warm["tokens"] / bare_s
    stream_rate = warm["tokens"] / warm["total_s"]
    print(f"Generate to the end, greedy, {warm['tokens']} tokens, {model}, embedded server.")
    print()
    print("| measure | value | target |")
    print("| --- | ---: | --- |")
    print(f"| bare `generate` tokens/s | {bare_rate:.1f} | |")
    print(
        f"| streamed tokens/s as the websocket client sees them | {stream_rate:.1f} "
        f"({stream_rate / bare_rate:.2f}× bare) | ≥ 0.85× |"
    )
    print(
        f"| warm time to first token | {warm['first_s'] * 1000:.0f} ms "
        f"(one step {step_s * 1000:.0f} ms + {(warm['first_s'] - step_s) * 1000:.0f} ms) "
        f"| ≤ one step + 50 ms |"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else settings.TOKENLENS_DEFAULT_MODEL)
