"""Branch stepping as it runs in the worker that owns the model: read the branch from the
database, step it with the engine (key/value caches live in this process), write the steps.

Called through worker.tasks (the Celery task or the in-process worker thread), never from a
web request directly. Errors are EngineErrors so they travel back as {"error": ...}.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import replace
from functools import lru_cache

from django.conf import settings
from django.db import IntegrityError, transaction

from engine.constraints import Constraint
from engine.conversation import Message, reply_text, turn_ids
from engine.distribution import prompt_ids
from engine.params import SamplingParams
from engine.stepping import StepRequest, StepResult, eos_ids_of
from engine.types import EngineError, InputError
from inspector.accounts.access import exploration_principal
from inspector.compute import leases
from inspector.compute.services import release_connection
from inspector.errors import ServiceError
from inspector.explorations.conversation import (
    check_turn_allowed,
    ended_message,
    reply_start,
    turns_of,
)
from inspector.models import Branch, Step
from inspector.protocol import COST_KEY, GENERATING_KEY, OUTCOME_KEY, STOP_KEY
from worker.scheduler import Generation, seconds_until

TOP_N = 20
NUL_SYMBOL = "\u2400"


def _branch(branch_id: str) -> Branch:
    try:
        return Branch.objects.select_related("exploration").get(pk=branch_id)
    except (Branch.DoesNotExist, ValueError):
        raise InputError(f"Unknown branch {branch_id!r}", field="branch") from None


def _force_ids(tokenizer, token_id: int | None, text: str | None) -> tuple[int, ...]:
    if token_id is not None:
        return (int(token_id),)
    if not text:
        raise InputError("Type the text to force, or give a token id", field="text")
    return tuple(tokenizer.encode(text, add_special_tokens=False))


@lru_cache(maxsize=256)
def _prompt_ids(loaded, prompt: str, system_prompt: str, use_chat_template: bool) -> tuple:
    """The prompt's ids, tokenized once per worker (every step of a branch reads them)."""
    return tuple(prompt_ids(loaded, prompt, system_prompt or None, use_chat_template))


def _turn_ids(branch: Branch, loaded, steps: list[Step], text: str | None) -> tuple[int, ...]:
    """The tokens a user's turn appends: the conversation so far, through the chat template."""
    eos_ids = eos_ids_of(loaded)
    history = [
        Message(turn.role, turn.text)
        if turn.role != "assistant"
        else Message("assistant", reply_text(loaded.tokenizer, turn.token_ids, eos_ids))
        for turn in turns_of(branch.exploration, steps)
    ]
    last_id = steps[-1].token_id if steps else None
    return turn_ids(loaded.tokenizer, history, text or "", last_id)


def build_request(branch: Branch, stepper, mode: str, token_id=None, text=None) -> StepRequest:
    """The engine request for the next step of a branch, from what the database holds."""
    exploration = branch.exploration
    loaded = stepper.loaded
    steps = branch.sequence(only=("index", "token_id", "mode"))
    forced = ()
    if mode == "force":
        forced = _force_ids(loaded.tokenizer, token_id, text)
    elif mode == "turn":  # the whole conversation, read through the chat template
        forced = _turn_ids(branch, loaded, branch.sequence(with_candidates=False), text)
    return StepRequest(
        branch=str(branch.pk),
        parent=str(branch.parent_id) if branch.parent_id else None,
        prompt_ids=_prompt_ids(
            loaded, exploration.prompt, exploration.system_prompt, exploration.use_chat_template
        ),
        completion_ids=tuple(step.token_id for step in steps),
        params=SamplingParams.from_dict(exploration.params),
        mode=mode,
        force_ids=forced,
        constraint=Constraint.from_dict(exploration.constraint),
        top_n=TOP_N,
        stop=tuple(exploration.stop or ()),
        max_new_tokens=exploration.max_new_tokens,
        cache_scope=exploration_principal(exploration),
        turn_start=reply_start(steps),
    )


def check_branch_room(request: StepRequest) -> None:
    """A step that would take the branch past TOKENLENS_MAX_STEPS_PER_BRANCH is refused whole
    (a forced text is never cut short without saying so)."""
    limit = settings.TOKENLENS_MAX_STEPS_PER_BRANCH
    left = limit - len(request.completion_ids)
    if request.n_new > left:
        raise InputError(
            f"This step adds {request.n_new:,} tokens; the branch has room for {max(left, 0):,} "
            f"more (the limit is {limit:,} tokens a branch). Nothing was added",
            field="text" if request.mode == "force" else "branch",
        )


def _may_hold_nul(value) -> bool:
    try:
        return "\\u0000" in json.dumps(value)  # ensure_ascii writes NUL as \u0000
    except (TypeError, ValueError):
        return True


def storable(value):
    """Text, or JSON-like data, with each NUL character shown as ␀ (U+2400): a token can be NUL
    (byte 0x00 is in every byte-level vocabulary, as a candidate or forced), and PostgreSQL
    keeps no NUL in text or jsonb. The token's id and its piece's bytes stay exact."""
    if isinstance(value, dict | list) and not _may_hold_nul(value):
        return value  # nearly always: one C-speed scan instead of a walk through every key
    if isinstance(value, str):
        return value.replace("\x00", NUL_SYMBOL)
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value


def save_result(
    branch: Branch,
    result: StepResult,
    params: dict,
    computed_on,
    expires_at: float = math.inf,
    turn: dict | None = None,
) -> list[Step]:
    """Write the steps of one result, if the branch still holds exactly `computed_on` (the
    completion the step was computed from) and has not ended. Another step, an undo or a
    generation that got there first means nothing of this result is kept: a clear error, and
    the branch stays as the other operation left it.

    The branch row is locked for the check and the write (SQLite: the IMMEDIATE transaction
    takes the write lock), so step, undo and fork on one branch happen one after another.
    A step whose asker was told it failed (past expires_at, checked under the lock) is not
    saved either.

    turn: for a user's turn, {"text", "reply_ended"}: kept on its first token; the branch must
    still have ended as the turn was computed for (reply_ended), and goes on after it."""
    steps = [
        Step(
            branch=branch,
            index=token.index,
            token_id=token.id,
            text=storable(token.piece.text[:300]),
            piece=storable(token.piece.to_dict()),
            mode=token.how,
            p_base=token.distribution.chosen.p_base,
            p_final=token.distribution.chosen.p_final,
            rank=token.distribution.chosen.rank,
            distribution=storable(token.distribution.to_dict()),
            params=params,
            elapsed_ms=token.elapsed_ms,
        )
        for token in result.tokens
    ]
    if turn is not None:
        steps[0].turn = storable(turn)
    ended_as = turn["reply_ended"] if turn is not None else ""
    try:
        with transaction.atomic():
            locked = Branch.objects.locked(branch.pk)
            if time.time() > expires_at:
                raise InputError("This step took too long and was not saved; try again", "branch")
            if locked.finish_reason != ended_as or tuple(locked.token_ids()) != tuple(computed_on):
                raise BranchChanged()
            Step.objects.bulk_create(steps)
            if result.finish_reason or turn is not None:
                finish_reason = result.finish_reason or ""
                Branch.objects.filter(pk=branch.pk).update(finish_reason=finish_reason)
    except (IntegrityError, BranchChanged, Branch.DoesNotExist):
        raise InputError(
            "The branch changed while this step was computed (another tab or person stepped, "
            "undid or generated); nothing was saved. Reload to see it as it is",
            field="branch",
        ) from None
    branch.finish_reason = result.finish_reason or ""
    return steps


class BranchChanged(Exception):
    """The branch no longer holds the tokens a step was computed from."""


def _open_branch(branch_id: str) -> Branch:
    """The branch, if it has not ended."""
    branch = _branch(branch_id)
    if branch.finish_reason:
        raise InputError(ended_message(branch), field="branch")
    return branch


def _ended_branch(branch_id: str) -> Branch:
    """The branch, if its reply has ended so that a user's turn may follow."""
    branch = _branch(branch_id)
    try:
        check_turn_allowed(branch)
    except ServiceError as error:
        raise InputError(error.message, field=error.field) from None
    return branch


def step_branch(params: dict, scheduler_for) -> dict:
    """Advance a branch by one step (several tokens when forcing a text) in the model's next
    batched pass, then save it.

    params: {"branch": id, "mode": sample|greedy|force|turn, "token_id"?, "text"?,
    "expires_at"?}. scheduler_for(model_key) gives this process's ModelScheduler.
    """
    mode = params.get("mode", "sample")
    branch = _ended_branch(params["branch"]) if mode == "turn" else _open_branch(params["branch"])
    turn = {"text": params.get("text") or "", "reply_ended": branch.finish_reason}
    scheduler = scheduler_for(branch.exploration.model_key)
    request = build_request(
        branch,
        scheduler.stepper,
        mode,
        params.get("token_id"),
        params.get("text"),
    )
    check_branch_room(request)
    expires_at = params.get("expires_at", math.inf)
    release_connection()
    result = scheduler.step(request, seconds_until(expires_at))
    steps = save_result(
        branch,
        result,
        branch.exploration.params,
        request.completion_ids,
        expires_at,
        turn if mode == "turn" else None,
    )
    return {
        "branch": str(branch.pk),
        "step_ids": [step.pk for step in steps],
        "first_index": steps[0].index,
        "finish_reason": result.finish_reason,
        COST_KEY: result.computed_tokens,
    }


MAX_DELAY_MS = 2000


LOST_LEASE = "This generation lost its lease (its worker was presumed gone)"


def generate_branch(params: dict, scheduler_for) -> dict:
    """Sample steps on a branch until it finishes or someone presses Stop; each step is saved
    and pushed to the exploration's open pages as it comes.

    params: {"branch": id, "exploration": id, "delay_ms": pause between steps (speed control),
    "lease": the token of the lease the web side took when it queued this generation}.
    Runs only while it holds that lease (see inspector.compute.leases): a redelivered or superseded
    message does nothing, and a generation whose lease was lost stops before its next save.
    """
    from django.core.cache import cache

    from inspector import broadcast

    branch_id, exploration_id = params["branch"], params["exploration"]
    key, token = GENERATING_KEY.format(branch=branch_id), params.get("lease") or ""
    seconds = settings.TOKENLENS_LEASE_SECONDS
    if not token or not leases.store().renew(key, token, seconds):
        return {"branch": branch_id, "reason": "not_held", "message": ""}
    delay = min(max(int(params.get("delay_ms") or 0), 0), MAX_DELAY_MS) / 1000
    reason, message = "stopped", ""
    try:
        with leases.Heartbeat(key, token, seconds) as heartbeat:
            reason = _generate(branch_id, exploration_id, scheduler_for, delay, heartbeat)
    except EngineError as error:
        reason, message = "error", error.message
    finally:
        with contextlib.suppress(Exception):  # Redis gone: the lease lapses by itself
            cache.set(OUTCOME_KEY.format(branch=branch_id), [reason, message], 600)
            cache.delete(STOP_KEY.format(branch=branch_id))
            leases.store().release(key, token)
        broadcast.generation_done(exploration_id, branch_id, reason, message)
    return {"branch": branch_id, "reason": reason, "message": message}


def _generate(branch_id, exploration_id, scheduler_for, delay: float, heartbeat) -> str:
    """The generation as the model's scheduler state: one token per pass, each saved and pushed
    as it comes, the pause between tokens a not-before time; returns why it ended ("stopped"
    or a finish reason). This thread only waits for it to end (and renews the lease)."""
    from django.core.cache import cache

    from inspector import broadcast

    stop_key = STOP_KEY.format(branch=branch_id)
    # The branch is read once; the loop keeps its tokens in memory (a step taken meanwhile
    # elsewhere changes the prefix, so its save is refused and the generation stops).
    branch = _open_branch(branch_id)
    scheduler = scheduler_for(branch.exploration.model_key)
    request = build_request(branch, scheduler.stepper, "sample")
    completion = list(request.completion_ids)

    def save_and_go_on(result: StepResult) -> bool:
        if heartbeat.lost.is_set():
            raise InputError(LOST_LEASE)
        steps = save_result(branch, result, branch.exploration.params, tuple(completion))
        release_connection()  # a finisher thread: the pool's connection goes back at once
        completion.extend(token.id for token in result.tokens)
        broadcast.branch_changed(exploration_id, branch_id, steps[0].index)
        if result.finish_reason:
            return False
        check_branch_room(replace(request, completion_ids=tuple(completion)))
        return True

    def should_stop() -> bool:
        return bool(cache.get(stop_key)) or heartbeat.lost.is_set()

    if should_stop():
        return "stopped"
    check_branch_room(request)
    generation = Generation(request, save_and_go_on, should_stop, pause_seconds=delay)
    release_connection()
    reason = scheduler.generate(generation)
    if reason == "stopped" and heartbeat.lost.is_set():  # not Stop: another took the branch
        raise InputError(LOST_LEASE)
    return reason
