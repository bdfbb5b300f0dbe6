"""What changes a branch's tokens: a step (waited for, or pushed to the page's websocket), a
fork, an undo and generating to the end, one operation at a time per branch (a lease). The
worker computes and saves the steps (worker.generation); this side holds the branch, checks
and queues."""

from __future__ import annotations

import contextlib
import logging
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from inspector import broadcast
from inspector.compute import budget, dispatch, leases, limits
from inspector.compute.services import compute_later, compute_now
from inspector.errors import REDIS_DOWN, ServiceError
from inspector.explorations.conversation import (
    check_fork_outside_turn,
    check_turn_allowed,
    ended_message,
    reply_start,
)
from inspector.explorations.serializers import MAX_FORCED_CHARS
from inspector.models import Branch, Step
from inspector.protocol import (
    GENERATING_KEY,
    OPERATION_KEY,
    OUTCOME_KEY,
    STOP_KEY,
    TASK_GENERATE,
    TASK_STEP_AND_REPLY,
)

logger = logging.getLogger(__name__)
BRANCH_BUSY = (
    "Another step, undo or fork of this branch is still under way (in another tab, or by "
    "someone sharing it); nothing was changed. Try again in a moment"
)
GENERATING = "This branch is generating; press Stop first"


def hold_branch(branch: Branch) -> str:
    """Take the branch for one step, undo or fork: a second one at the same time (a double
    click, another tab) is refused at once with 409 instead of racing it, and none starts
    while the branch generates. Returns the lease's token (release_branch gives it back); the
    lease lapses by itself if whoever holds it dies.

    Taken before the generation lease is read, as start_generation takes that one before
    reading this: of a step and a generation starting together, one always sees the other."""
    key, token = OPERATION_KEY.format(branch=branch.pk), leases.new_token()
    try:
        held = leases.store().acquire(key, token, settings.TOKENLENS_TASK_TIMEOUT + 10)
    except Exception as exc:
        raise ServiceError(REDIS_DOWN, status=503) from exc
    if not held:
        raise ServiceError(BRANCH_BUSY, field="branch", status=409)
    if is_generating(branch):
        release_branch(branch.pk, token)
        raise ServiceError(GENERATING, field="branch", status=409)
    return token


def release_branch(branch_id, token: str) -> None:
    """Give back what hold_branch took (the worker does, for a pushed step)."""
    with contextlib.suppress(Exception):  # Redis gone: the lease lapses by itself
        leases.store().release(OPERATION_KEY.format(branch=branch_id), token)


@contextlib.contextmanager
def one_operation(branch: Branch):
    """Hold the branch (hold_branch) while the block runs."""
    token = hold_branch(branch)
    try:
        yield
    finally:
        release_branch(branch.pk, token)


def branch_route(branch: Branch) -> dict:
    """Where work on a branch goes: its model, on the worker that holds its exploration's
    caches (every branch of one exploration on one worker, so a fork finds its prefix)."""
    return {"model": branch.exploration.model_key, "affinity": str(branch.exploration_id)}


def step(branch: Branch, mode: str, token_id: int | None = None, text: str | None = None):
    """Advance a branch by one step in the worker; returns the new Step rows."""
    with one_operation(branch):
        return _step(branch, mode, token_id, text)


def add_turn(branch: Branch, text: str) -> list[Step]:
    """Append a user's turn to a conversation whose reply has ended (conversation.py says
    when); the worker reads it through the chat template. Returns the turn's Step rows."""
    with one_operation(branch):
        return _step(branch, "turn", None, text)


def _check_step(branch: Branch, mode: str, text: str | None) -> None:
    """What can be refused before queueing (the worker checks the branch's room: it knows how
    many tokens the step adds)."""
    if mode == "turn":
        check_turn_allowed(branch)
    if text and len(text) > MAX_FORCED_CHARS:
        raise ServiceError(
            f"A forced text is at most {MAX_FORCED_CHARS:,} characters; this one has {len(text):,}",
            field="text",
        )


def _step_params(branch: Branch, mode: str, token_id: int | None, text: str | None) -> dict:
    return {
        "branch": str(branch.pk),
        "mode": mode,
        "token_id": token_id,
        "text": text,
        **branch_route(branch),
    }


def _step(branch: Branch, mode: str, token_id: int | None, text: str | None) -> list[Step]:
    _check_step(branch, mode, text)
    outcome = compute_now("branch_step", _step_params(branch, mode, token_id, text))
    branch.finish_reason = outcome["finish_reason"] or ""
    broadcast.branch_changed(branch.exploration_id, branch.pk, outcome["first_index"])
    return list(Step.objects.filter(pk__in=outcome["step_ids"]).order_by("index"))


class PushedStep(NamedTuple):
    asked: str  # the step's id, which the answer carries
    operation: str  # the branch's lease, which the worker gives back (release_branch)


def push_step(
    branch: Branch, mode: str, token_id: int | None, text: str | None, reply_to: str
) -> PushedStep:
    """Queue one step and return at once: the page that asked hears how it went on its
    websocket (`reply_to`, the channel of its connection), so no request, thread or database
    connection waits for the model. The worker saves the step, pushes the new tokens to every
    open page, gives the branch back and answers the page (worker.replies.step_and_reply).
    Refused here, before anything is queued, for the same reasons as a step that waits.
    The answer carries the returned `asked` (a page may hear it before this returns)."""
    _check_step(branch, mode, text)
    token = hold_branch(branch)
    asked = leases.new_token()
    params = {
        **_step_params(branch, mode, token_id, text),
        "exploration": str(branch.exploration_id),
        "operation": token,
        "reply_to": reply_to,
        "asked": asked,
    }
    try:
        compute_later(TASK_STEP_AND_REPLY, "branch_step", params)
    except BaseException:
        release_branch(branch.pk, token)
        raise
    return PushedStep(asked, token)


def fork(branch: Branch, at_index: int, token_id: int) -> Branch:
    """A new branch holding this branch's first `at_index` tokens, then `token_id` (forced);
    the original branch stays as it is."""
    with one_operation(branch):
        return _fork(branch, at_index, token_id)


def _fork(branch: Branch, at_index: int, token_id: int) -> Branch:
    with transaction.atomic():  # an undo of the parent waits (see undo)
        Branch.objects.locked(branch.pk)
        length = branch.length
        check_fork_outside_turn(branch, at_index)
        if at_index > length:
            raise ServiceError(
                f"This branch has {length} tokens; a branch can start at index 0 to {length}",
                field="at_index",
            )
        count = branch.exploration.branches.count()
        limits.check_room_for_branch(count)
        child = Branch.objects.create(
            exploration=branch.exploration,
            parent=branch,
            fork_index=at_index,
            label=f"branch {count + 1}",
        )
    try:
        step(child, "force", token_id=token_id)
    except ServiceError as error:
        child.delete()
        if error.field == "branch":
            error.field = "token_id"
        raise
    return child


def undo(branch: Branch) -> Step:
    """Remove the branch's last own token (inherited ones belong to the parent branch); a
    user's turn goes whole, and the reply before it is ended again as it was.

    The branch row is locked while the last token is read and deleted, so an undo racing a
    step removes exactly one token: the step's save then sees the prefix changed and keeps
    nothing (generation.save_result)."""
    with one_operation(branch):
        return _undo(branch)


def _undo(branch: Branch) -> Step:
    with transaction.atomic():
        Branch.objects.locked(branch.pk)
        last = branch.steps.order_by("-index").first()
        if last is None:
            raise ServiceError(
                "This branch has no token of its own to undo; its tokens belong to the branch "
                "it started from",
                field="branch",
            )
        first, ended = last, ""
        if last.mode == Step.Mode.TURN:
            first = _turn_opening(branch)
            ended = (first.turn or {}).get("reply_ended", "")
        if branch.children.filter(fork_index__gt=first.index).exists():
            raise ServiceError(
                "Another branch starts after this token; delete that branch first",
                field="branch",
            )
        branch.steps.filter(index__gte=first.index).delete()
        Branch.objects.filter(pk=branch.pk).update(finish_reason=ended)
    branch.finish_reason = ended
    broadcast.branch_changed(branch.exploration_id, branch.pk)
    return last


def _turn_opening(branch: Branch) -> Step:
    """The first step of the user's turn the branch's own steps end with (walking back over
    its consecutive turn steps)."""
    opening = None
    for step in branch.steps.only("index", "mode", "turn").order_by("-index").iterator():
        if step.mode != Step.Mode.TURN:
            break
        opening = step
        if step.turn is not None:
            break
    return opening


def is_generating(branch: Branch) -> bool:
    """Whether a generation holds this branch's lease: queued (waiting for a worker) or running
    (its worker renews the lease; a dead worker's lease lapses, see inspector.compute.leases).
    False while Redis is unreachable: then nothing can generate, and pages still render."""
    try:
        return leases.store().holder(GENERATING_KEY.format(branch=branch.pk)) is not None
    except Exception:
        logger.warning("Leases unreachable; showing branch %s as not generating", branch.pk)
        return False


def start_generation(branch: Branch, delay_ms=0) -> None:
    """Generate to the end in the worker; steps reach the open pages as they are made.

    The lease is taken here for as long as the queued message may wait; a worker that gets
    the message later than that finds the lease gone and does nothing."""
    if branch.finish_reason:
        raise ServiceError(ended_message(branch), field="branch")
    limits.check_room_for_tokens(branch.length)
    try:
        delay = int(delay_ms or 0)
    except (TypeError, ValueError):
        raise ServiceError("The speed must be a whole number of milliseconds", "delay_ms") from None
    if is_generating(branch):  # before charging for it
        raise ServiceError("This branch is already generating", field="branch")
    if leases.store().holder(OPERATION_KEY.format(branch=branch.pk)) is not None:
        raise ServiceError(BRANCH_BUSY, field="branch", status=409)
    reply_length = branch.length - reply_start(branch.sequence(only=("index", "mode")))
    left = branch.exploration.max_new_tokens - reply_length
    budget.charge("generate", {}, budget.generation_price(left))
    key, token = GENERATING_KEY.format(branch=branch.pk), leases.new_token()
    queued_for = settings.TOKENLENS_TASK_TIMEOUT
    if not leases.store().acquire(key, token, queued_for):
        raise ServiceError("This branch is already generating", field="branch")
    if leases.store().holder(OPERATION_KEY.format(branch=branch.pk)) is not None:
        leases.store().release(key, token)
        raise ServiceError(BRANCH_BUSY, field="branch", status=409)
    cache.delete_many([STOP_KEY.format(branch=branch.pk), OUTCOME_KEY.format(branch=branch.pk)])
    params = {
        "branch": str(branch.pk),
        "exploration": str(branch.exploration_id),
        "delay_ms": delay,
        "lease": token,
    }

    def send() -> None:
        try:
            dispatch.send(TASK_GENERATE, [params], queued_for, route=branch_route(branch))
        except ServiceError:
            leases.store().release(key, token)
            raise

    transaction.on_commit(send)


def stop_generation(branch: Branch) -> None:
    """Ask a running generation to stop; it does before its next step."""
    if is_generating(branch):
        cache.set(STOP_KEY.format(branch=branch.pk), True, 600)


def generation_outcome(branch: Branch) -> str:
    """What became of the last generate-to-end on this branch, in words ("" if it just ended
    normally). No recorded outcome means its worker went away mid-generation."""
    outcome = cache.get(OUTCOME_KEY.format(branch=branch.pk))
    if outcome is None:
        return (
            "Generation stopped: no worker is stepping this branch any more (the tokens made so "
            "far are saved). Press Generate to the end to resume."
        )
    reason, message = outcome
    if reason == "stopped":
        return "Generation stopped."
    if reason == "error":
        return f"Generation stopped: {message}"
    return ""
