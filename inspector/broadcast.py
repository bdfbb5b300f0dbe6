"""The one place that knows channel group names and event types."""

from __future__ import annotations

import asyncio
import logging
import threading
from uuid import UUID

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.dispatch import Signal

logger = logging.getLogger(__name__)

# Who else hears of a change (inspector.live relays them to live classes), without this module
# or the exploration code knowing them: tokens_changed(exploration_id, branch_id, from_index),
# generation_finished(exploration_id, branch_id, reason, message) and, from the next-token
# panel, preview_shown(request, branch, distribution, params).
tokens_changed = Signal()
generation_finished = Signal()
preview_shown = Signal()


def tell(signal: Signal, **details) -> None:
    """Send the signal; a failing receiver is logged, never raised to the sender."""
    for receiver, outcome in signal.send_robust(sender=None, **details):
        if isinstance(outcome, Exception):
            logger.warning("%s failed: %s", receiver, outcome, exc_info=outcome)


# The in-memory channel layer (the embedded default) keeps its queues on the server's event
# loop: an event sent from a worker thread must be handed to that loop, or it waits there
# until something else wakes the loop. Consumers record the loop when a page connects.
_server_loop: asyncio.AbstractEventLoop | None = None


def remember_server_loop() -> None:
    """Called from a consumer (inside the server's event loop)."""
    global _server_loop
    _server_loop = asyncio.get_running_loop()


def _log_failure(future) -> None:
    if future.exception() is not None:
        logger.warning("Could not push an event: %s", future.exception())


def deliver(method: str, target: str, event: dict) -> None:
    """layer.group_send or layer.send (`method`) of event to target, from any thread."""
    layer = get_channel_layer()
    loop = _server_loop
    if isinstance(layer, InMemoryChannelLayer):
        if loop is not None and loop.is_running() and _running_loop() is not loop:
            # Not waited for: the worker goes on with the next token meanwhile.
            coroutine = getattr(layer, method)(target, event)
            future = asyncio.run_coroutine_threadsafe(coroutine, loop)
            future.add_done_callback(_log_failure)
            return
        async_to_sync(getattr(layer, method))(target, event)
        return
    if _running_loop() is not None:  # not from async code: it awaits the layer itself
        raise RuntimeError("deliver() is for threads without an event loop")
    coroutine = getattr(layer, method)(target, event)
    asyncio.run_coroutine_threadsafe(coroutine, _sending_loop()).result(SEND_TIMEOUT_SECONDS)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


SEND_TIMEOUT_SECONDS = 10
_sender: asyncio.AbstractEventLoop | None = None
_sender_lock = threading.Lock()


def _sending_loop() -> asyncio.AbstractEventLoop:
    """One event loop per process, on a thread of its own, that sends the events of threads
    without a loop (worker threads, views) to Redis. channels_redis keeps its connections per
    event loop, and async_to_sync ran each send on a new loop: a new Redis connection, and
    its handshake, for every event (two a step)."""
    global _sender
    with _sender_lock:
        if _sender is None:
            _sender = asyncio.new_event_loop()
            thread = threading.Thread(
                target=_sender.run_forever, name="tokenlens-events", daemon=True
            )
            thread.start()
        return _sender


def _group_send(group: str, event: dict) -> None:
    deliver("group_send", group, event)


JOB_UPDATE = "job.update"


def page_group(page_id: UUID | str) -> str:
    """Each open page has its own group: its jobs' progress goes to that tab only."""
    return f"page.{page_id}"


def job_updated(page_id: UUID | str | None, job_id: UUID | str) -> None:
    """Tell the page that a job changed; the consumer reads the row and renders it."""
    if page_id is None:
        return
    try:
        _group_send(page_group(page_id), {"type": JOB_UPDATE, "job_id": str(job_id)})
    except Exception:  # pages fall back to polling the row
        logger.warning("Could not push job %s to its page", job_id, exc_info=True)


BRANCH_CHANGED = "branch.changed"
GENERATION_DONE = "generation.done"


def exploration_group(exploration_id: UUID | str) -> str:
    """Every open tab of an exploration: they all follow its branches live."""
    return f"exploration.{exploration_id}"


def _send(group: str, event: dict) -> None:
    try:
        _group_send(group, event)
    except Exception:  # a reload shows everything: the rows are saved
        logger.warning("Could not push %s to %s", event["type"], group, exc_info=True)


def branch_changed(exploration_id, branch_id, from_index: int | None = None) -> None:
    """A branch changed: tokens appended from `from_index` (pages that show the branch up to
    there add them), or anything else (None: pages re-render its tokens)."""
    _send(
        exploration_group(exploration_id),
        {"type": BRANCH_CHANGED, "branch": str(branch_id), "from_index": from_index},
    )
    tell(tokens_changed, exploration_id=exploration_id, branch_id=branch_id, from_index=from_index)


def generation_done(exploration_id, branch_id, reason: str, message: str = "") -> None:
    """Generate-to-end finished (reason: a finish reason, "stopped" or "error")."""
    _send(
        exploration_group(exploration_id),
        {"type": GENERATION_DONE, "branch": str(branch_id), "reason": reason, "message": message},
    )
    tell(
        generation_finished,
        exploration_id=exploration_id,
        branch_id=branch_id,
        reason=reason,
        message=message,
    )


STEP_DONE = "step.done"


def step_done(
    reply_to: str, branch_id, asked: str, error: dict | None = None, result: dict | None = None
) -> None:
    """Tell the page or API request that asked for a pushed step (its channel, `reply_to`; the
    step's id, `asked`) that the step is saved (result: {"step_ids", "finish_reason"}), or why
    not (error: {"message", "field", "status"?}); other pages heard of the new tokens through
    branch_changed. A page that missed this catches up when it reconnects."""
    event = {
        "type": STEP_DONE,
        "branch": str(branch_id),
        "asked": asked,
        "error": error,
        "result": result,
    }
    try:
        deliver("send", reply_to, event)
    except Exception:
        logger.warning("Could not answer the page that stepped %s", branch_id, exc_info=True)


def is_reply_channel(name: str) -> bool:
    """Whether `name` can be a connection's own channel (what a page sends as reply_to)."""
    if not isinstance(name, str):
        return False
    try:
        get_channel_layer().require_valid_channel_name(name)
    except TypeError:
        return False
    return "!" in name
