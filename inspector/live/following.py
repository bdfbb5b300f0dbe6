"""Following a live session and leaving it: breaking away into one's own copy of the class's
text (by pressing *Try it myself*, or by stepping), coming back, and the cache scope a
follower's analyses share with the class."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from inspector.accounts import access
from inspector.compute import limits
from inspector.errors import ServiceError
from inspector.explorations import services as explorations
from inspector.live import relay
from inspector.live import services as live
from inspector.models import Branch, Exploration, LiveParticipant, LiveSession, Step


def break_away(request, session: LiveSession) -> Exploration:
    """The follower's own exploration, with the class's current text as its one branch: they
    step on from there in their own workspace and stop following."""
    seat = _require_seat(request, session)
    if session.branch is None:
        raise ServiceError("The class has nothing on screen yet", field="live", status=409)
    exploration = _copy_line(request, session)
    LiveParticipant.objects.filter(pk=seat.pk).update(
        following=False, branch=exploration.root, seen_at=timezone.now()
    )
    relay.class_changed(session)
    return exploration


def first_step_away(request, branch, step: dict) -> None:
    """The step a follower took to break away (Step, Greedy step, Choose), on their own copy."""
    limits.check_generation_rate(request)
    explorations.step(branch, step["mode"], step.get("token_id"), step.get("text") or None)


def back_to_class(request, session: LiveSession) -> None:
    seat = live.seat_of(request, session)
    if seat is not None and not seat.following:
        LiveParticipant.objects.filter(pk=seat.pk).update(following=True, seen_at=timezone.now())
        relay.class_changed(session)


def _require_seat(request, session: LiveSession) -> LiveParticipant:
    if not session.running:
        raise ServiceError("This live session has ended", field="live", status=409)
    seat = live.seat_of(request, session)
    if seat is None:
        raise ServiceError("Join the session first", field="live", status=403)
    return seat


def _copy_line(request, session: LiveSession) -> Exploration:
    """A new exploration in the requester's workspace: the class's settings and text so far
    (every token of the branch on screen, as recorded), remembered as forked from the lesson."""
    source = session.branch.exploration
    user = access.user_of(request)
    skipped = {"id", "branch"}
    with transaction.atomic():
        exploration = Exploration.objects.create(
            owner=user,
            session_key="" if user else access.visitor_key(request),
            title=f"{source} (from the live class)"[:200],
            model_key=source.model_key,
            prompt=source.prompt,
            system_prompt=source.system_prompt,
            use_chat_template=source.use_chat_template,
            params=source.params,
            max_new_tokens=source.max_new_tokens,
            stop=source.stop,
            constraint=source.constraint,
            forked_from=source,
            forked_from_lesson=session.lesson,
            imported=source.imported,
        )
        root = Branch.objects.create(exploration=exploration, label="mine")
        copies = [
            Step(
                branch=root,
                **{
                    field.attname: getattr(step, field.attname)
                    for field in Step._meta.concrete_fields
                    if field.name not in skipped
                },
            )
            for step in session.branch.sequence()
        ]
        Step.objects.bulk_create(copies, batch_size=500)
    return exploration


LIVE_HEADER = "X-TokenLens-Live"  # a follower's page names the session it follows


def class_scope(request, params: dict) -> str | None:
    """The cache scope a follower's analysis shares with the rest of the class, or None.

    Analyses cache what they computed per person (cache_scope), so that nobody learns from a
    quick answer what somebody else asked. Everyone following a live session reads the same
    text, and the presenter's panel opens on every follower's page at once; so an analysis of
    that text (the class's prompt and a prefix of its branch's tokens) asked by a page that
    follows the session (the LIVE_HEADER) may share one scope: thirty followers opening the
    attention panel cost one pass, then a layer each. Any other text keeps the person's own."""
    session_id = request.headers.get(LIVE_HEADER)
    if not session_id:
        return None
    try:
        session = live.get_session(request, session_id)
    except ServiceError:
        return None
    exploration, branch = session.exploration, session.branch
    if session.ended_at or exploration is None or branch is None:
        return None
    completion = list(params.get("completion_ids") or ())
    same_text = (
        params.get("model") == exploration.model_key
        and params.get("text") == exploration.prompt
        and (params.get("system_prompt") or "") == (exploration.system_prompt or "")
        and bool(params.get("use_chat_template")) == exploration.use_chat_template
        and branch.token_ids()[: len(completion)] == completion
    )
    return f"live:{session.pk}" if same_text else None
