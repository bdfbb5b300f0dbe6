"""API requests that wait for the model without a thread waiting with them.

Django's ASGI handler gives every request a thread of its own for as long as the request lasts
(its sync middleware runs there), so an API step that waits for its answer inside a view holds
an idle thread all the while: 64 students stepping through the API meant 64 idle threads.

`AnsweredLater` wraps Django's ASGI app for the routes in ANSWERED_LATER_ROUTES. It gives the
request a channel of its own on the channel layer (the request's scope carries it; see
`reply_channel`). A view that can hand its work to the worker queues it with that channel as
`reply_to` and returns `answer_later(...)`; Django then ends the request and its thread goes.
The wrapper awaits the worker's answer on the channel (an await on the event loop, no thread),
then builds the JSON body with the finisher the view named, in a short call on a pooled
thread. A view that does not (a client without this wrapper, a test client, a refusal) answers
as usual and the wrapper passes that answer on unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connections
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from inspector import broadcast

logger = logging.getLogger(__name__)
REPLY_TO_SCOPE = "tokenlens.reply_to"
LATER_HEADER = "TokenLens-Answered-Later"
ANSWERED_LATER_ROUTES = re.compile(r"^/api/v1/branches/[0-9a-f-]{36}/(steps|turns)/$")
# After the worker's own deadline (settings.TOKENLENS_TASK_TIMEOUT): a worker that took the
# work but could not do it in time answers so itself.
ANSWER_GRACE_SECONDS = 3
NO_ANSWER = "No worker answered within {seconds} s; is a worker running (`make worker`)?"

# name → function(event) -> (status, body): what the answer's body says, from the worker's
# event (views register theirs with `finisher`).
FINISHERS: dict[str, Callable[[dict], tuple[int, dict]]] = {}


def finisher(name: str):
    """Register a function that turns a worker's answer event into (status, JSON body)."""

    def register(function):
        FINISHERS[name] = function
        return function

    return register


def reply_channel(request) -> str | None:
    """The channel this request's answer can be sent to (only through AnsweredLater)."""
    django_request = getattr(request, "_request", request)
    return getattr(django_request, "scope", {}).get(REPLY_TO_SCOPE)


def answer_later(finisher_name: str, asked: str) -> Response:
    """What a view returns once its work is queued with reply_channel(request) as reply_to:
    the wrapper answers with FINISHERS[finisher_name] when the event for `asked` arrives."""
    return Response(status=202, headers={LATER_HEADER: f"{finisher_name} {asked}"})


_REPLACED_HEADERS = {b"content-length", b"content-type", LATER_HEADER.lower().encode()}


class _HeldResponse:
    """Django's `send`: passes every answer on, except one marked to be answered later."""

    def __init__(self, send):
        self.send = send
        self.later: tuple[str, str] | None = None
        self.headers: list[tuple[bytes, bytes]] = []

    async def __call__(self, message):
        if message["type"] == "http.response.start":
            headers = {key.lower(): value for key, value in message.get("headers", [])}
            later = headers.get(LATER_HEADER.lower().encode())
            if later is not None:
                name, asked = later.decode().split(" ", 1)
                self.later = (name, asked)
                self.headers = [
                    (key, value)
                    for key, value in message.get("headers", [])
                    if key.lower() not in _REPLACED_HEADERS
                ]
                return
        elif self.later is not None:
            return  # the held answer's own (empty) body
        await self.send(message)


class AnsweredLater:
    """ASGI middleware around Django's HTTP app (see the module's docstring)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if not _answered_later(scope):
            return await self.app(scope, receive, send)
        layer = get_channel_layer()
        broadcast.remember_server_loop()  # the in-memory layer's events come to this loop
        reply_to = await layer.new_channel("answer.")
        held = _HeldResponse(send)
        await self.app({**scope, REPLY_TO_SCOPE: reply_to}, receive, held)
        if held.later is None:
            return
        name, asked = held.later
        seconds = settings.TOKENLENS_TASK_TIMEOUT + ANSWER_GRACE_SECONDS
        try:
            event = await asyncio.wait_for(_answer(layer, reply_to, asked), seconds)
            status, body = await sync_to_async(_finish, thread_sensitive=False)(name, event)
        except TimeoutError:
            message = NO_ANSWER.format(seconds=settings.TOKENLENS_TASK_TIMEOUT)
            status, body = 503, {"error": {"field": "non_field_errors", "message": message}}
        await _send_json(send, status, body, held.headers)


def _answered_later(scope) -> bool:
    return (
        scope["type"] == "http"
        and scope.get("method") == "POST"
        and ANSWERED_LATER_ROUTES.match(scope.get("path", "")) is not None
    )


async def _answer(layer, reply_to: str, asked: str) -> dict:
    while True:
        event = await layer.receive(reply_to)
        if event.get("asked") == asked:
            return event


def _finish(name: str, event: dict) -> tuple[int, dict]:
    """The finisher, on a pooled thread with a database connection given back afterwards."""
    close_old_connections()
    try:
        error = event.get("error")
        if error:
            status = error.get("status", 400)
            return status, {"error": {"field": error["field"], "message": error["message"]}}
        return FINISHERS[name](event)
    except Exception:
        logger.exception("Could not answer %s", name)
        message = "The answer could not be read back; the step may be saved: reload the branch"
        return 500, {"error": {"field": "non_field_errors", "message": message}}
    finally:
        connections.close_all()


async def _send_json(send, status: int, body: dict, headers: list) -> None:
    content = JSONRenderer().render(body) if body is not None else b""
    headers = [
        *headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
