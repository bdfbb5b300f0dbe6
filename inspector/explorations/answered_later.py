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
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connections
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from inspector import broadcast
from inspector.compute.dispatch import NO_ANSWER
from inspector.errors import REDIS_DOWN
from inspector.explorations.branches import release_branch

logger = logging.getLogger(__name__)
REPLY_TO_SCOPE = "tokenlens.reply_to"
LATER_HEADER = "TokenLens-Answered-Later"
ANSWERED_LATER_ROUTES = re.compile(r"^/api/v1/branches/[0-9a-f-]{36}/(steps|turns)/$")
# After the worker's own deadline (settings.TOKENLENS_TASK_TIMEOUT): a worker that took the
# work but could not do it in time answers so itself.
ANSWER_GRACE_SECONDS = 3

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


def answer_later(finisher_name: str, branch_id, pushed) -> Response:
    """What a view returns once its step is queued (branches.push_step) with
    reply_channel(request) as reply_to: the wrapper answers with FINISHERS[finisher_name]
    when the event for `pushed.asked` arrives, and gives the branch back if none comes. The
    header never leaves the server."""
    later = f"{finisher_name} {pushed.asked} {branch_id} {pushed.operation}"
    return Response(status=202, headers={LATER_HEADER: later})


@dataclass(frozen=True)
class _Later:
    finisher: str
    asked: str
    branch: str
    operation: str


_REPLACED_HEADERS = {b"content-length", b"content-type", LATER_HEADER.lower().encode()}


class _HeldResponse:
    """Django's `send`: passes every answer on, except one marked to be answered later."""

    def __init__(self, send):
        self.send = send
        self.later: _Later | None = None
        self.headers: list[tuple[bytes, bytes]] = []

    async def __call__(self, message):
        if message["type"] == "http.response.start":
            headers = {key.lower(): value for key, value in message.get("headers", [])}
            later = headers.get(LATER_HEADER.lower().encode())
            if later is not None:
                self.later = _Later(*later.decode().split(" "))
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
        # The layer's own prefix: channels_redis reads one prefix's messages at a time per
        # process, so a prefix of our own would wait behind the pages' (and they behind it).
        reply_to = await layer.new_channel()
        held = _HeldResponse(send)
        await self.app({**scope, REPLY_TO_SCOPE: reply_to}, receive, held)
        if held.later is None:
            return
        try:
            answer = await _wait(layer, reply_to, held.later, receive)
        finally:
            _forget(layer, reply_to)
        if answer is not None:
            status, body = answer
            await _send_json(send, status, body, held.headers)


async def _wait(layer, reply_to: str, later: _Later, receive) -> tuple[int, dict] | None:
    """(status, body) of the answer; None when the client went away first."""
    seconds = settings.TOKENLENS_TASK_TIMEOUT + ANSWER_GRACE_SECONDS
    answered = asyncio.ensure_future(_answer(layer, reply_to, later.asked))
    gone = asyncio.ensure_future(_disconnect(receive))
    try:
        done, _ = await asyncio.wait(
            {answered, gone}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
        )
        if answered in done:
            event = answered.result()
            return await sync_to_async(_finish, thread_sensitive=False)(later.finisher, event)
        # No answer in time, or nobody to answer: as a step waited for in a view, the branch
        # is given back (the worker saves nothing past its deadline).
        await sync_to_async(release_branch, thread_sensitive=False)(later.branch, later.operation)
        if gone in done:
            return None
        message = NO_ANSWER.format(seconds=settings.TOKENLENS_TASK_TIMEOUT)
        return 503, {"error": {"field": "non_field_errors", "message": message}}
    except Exception:
        logger.exception("Could not wait for the answer to %s", later.finisher)
        return 503, {"error": {"field": "non_field_errors", "message": REDIS_DOWN}}
    finally:
        answered.cancel()
        gone.cancel()


async def _disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _forget(layer, reply_to: str) -> None:
    """channels_redis keeps a buffer per channel it has received on; drop this one's (an
    answer arriving after the request ended would make a new one, which it never drops)."""
    buffers = getattr(layer, "receive_buffer", None)
    if buffers is not None:
        buffers.pop(reply_to, None)


def _answered_later(scope) -> bool:
    return (
        settings.TOKENLENS_API_ANSWERED_LATER
        and scope["type"] == "http"
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
    content = JSONRenderer().render(body)
    headers = [
        *headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
