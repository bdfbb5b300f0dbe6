"""Use-cases of live sessions, shared by the pages, the API and the consumer.

The presenter (the lesson's instructor or a co-instructor) starts a session; its `code` is read
aloud and `/live/<code>/` joins it. What every follower's page shows is the session's row: the
lesson item, exploration and branch on screen, the open panel with its choices, the selected
tokens and the presenter's sliders, with a `version` bumped at each change. Tokens are not
copied into it: the branch's own steps are the truth, so a late joiner reads both from the
database and lands on the exact current state. Every change is kept as a LiveEvent (the record).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from inspector.accounts import access, audit
from inspector.errors import ServiceError
from inspector.lessons import services as lessons
from inspector.live import reading, relay
from inspector.models import Branch, Exploration, LiveEvent, LiveParticipant, LiveSession

PANELS = (
    "tokens",
    "embeddings",
    "sampling",
    "attention",
    "graph",
    "heads",
    "layers",
    "attribution",
)
MAX_CHOICES = 20
MAX_SELECTION = 50

# --- finding a session ------------------------------------------------------------------------


def start(request, lesson_id, pacing: str = LiveSession.Pacing.INSTRUCTOR) -> LiveSession:
    """A running session of the lesson, on its first item (the running one if there is one)."""
    lesson = lessons.get_lesson(request, lesson_id)
    user = access.user_of(request)
    if not access.may_present(user, lesson):
        raise ServiceError("Only the lesson's instructors present it live", "lesson", 403)
    if pacing not in LiveSession.Pacing.values:
        raise ServiceError("Pacing is instructor or student", field="pacing")
    running = lesson.live_sessions.filter(ended_at__isnull=True).first()
    if running is not None:
        return running
    item = lesson.items.select_related("exploration").first()
    if item is None:
        raise ServiceError("Add an exploration to the lesson before presenting it", "lesson")
    for _attempt in range(5):  # a code already running elsewhere: draw another
        try:
            with transaction.atomic():
                session = LiveSession.objects.create(
                    lesson=lesson,
                    started_by=user,
                    presenter=user,
                    pacing=pacing,
                    item=item,
                    exploration=item.exploration,
                    branch=item.exploration.root,
                )
            break
        except IntegrityError:
            continue
    else:
        raise ServiceError("Could not draw a free code; try again", field="code", status=503)
    _record(session, "started", presenter=user.get_username(), item=item.pk)
    audit.record(request, "live.start", lesson, f"Started a live session of {lesson.title!r}")
    return session


def get_session(request, session_id, need: str = "follow") -> LiveSession:
    """The session if the request may `need` it: follow (joined it, or may present it) or
    present. Strangers get 404."""
    try:
        session = LiveSession.objects.select_related("lesson", "presenter").get(pk=session_id)
    except (LiveSession.DoesNotExist, ValueError, TypeError, ValidationError):
        raise ServiceError("No such live session", field="live", status=404) from None
    presents = access.may_present(access.user_of(request), session.lesson)
    joined = str(session.pk) in request.session.get(access.LIVE_SESSIONS, [])
    if not presents and not joined:
        raise ServiceError("No such live session", field="live", status=404)
    if need == "present" and not presents:
        raise ServiceError("Only the lesson's instructors present", field="live", status=403)
    return session


def join(request, code: str) -> tuple[LiveSession, LiveParticipant | None]:
    """The running session behind a code; the browser remembers it, and anyone who is not one of
    its instructors takes a seat (following)."""
    cleaned = (code or "").strip().upper()
    session = (
        LiveSession.objects.select_related("lesson", "presenter")
        .filter(code=cleaned, ended_at__isnull=True)
        .first()
    )
    if session is None:
        raise ServiceError("No live session has that code (or it has ended)", "code", 404)
    access.remember_token(request, access.LIVE_SESSIONS, str(session.pk))
    user = access.user_of(request)
    if access.may_present(user, session.lesson):
        return session, None
    principal = access.principal(request)
    seat, made = LiveParticipant.objects.get_or_create(
        session=session,
        principal=principal,
        defaults={"user": user, "name": _name_of(request, session)},
    )
    if not made:
        LiveParticipant.objects.filter(pk=seat.pk).update(seen_at=timezone.now())
    if made:
        relay.class_changed(session)
    return session, seat


def _name_of(request, session: LiveSession) -> str:
    user = access.user_of(request)
    if user is not None:
        return user.get_full_name() or user.get_username()
    number = session.participants.filter(user__isnull=True).count() + 1
    return f"Visitor {number}"


def seat_of(request, session: LiveSession) -> LiveParticipant | None:
    return session.participants.filter(principal=access.principal(request)).first()


def presenting(request, exploration: Exploration) -> LiveSession | None:
    """The running session of a lesson holding this exploration that this request presents."""
    user = access.user_of(request)
    if user is None:
        return None
    sessions = LiveSession.objects.select_related("lesson").filter(
        ended_at__isnull=True, lesson__items__exploration=exploration
    )
    return next((one for one in sessions if access.may_present(user, one.lesson)), None)


def broken_away_to(request, exploration: Exploration) -> LiveSession | None:
    """The running session this request broke away from into this exploration."""
    seats = LiveParticipant.objects.select_related("session").filter(
        principal=access.principal(request),
        branch__exploration=exploration,
        session__ended_at__isnull=True,
    )
    seat = seats.first()
    return seat.session if seat else None


# --- the state --------------------------------------------------------------------------------


def change(request, session: LiveSession, changes: dict) -> LiveSession:
    """The presenter changed what the class sees: any of item, branch, panel, selection,
    preview, pacing. Checked, saved with a new version, recorded, pushed."""
    require_presenter(request, session)
    fields = _checked_changes(session, changes)
    if not fields:
        return session
    for name, value in fields.items():
        setattr(session, name, value)
    LiveSession.objects.filter(pk=session.pk).update(version=F("version") + 1, **fields)
    session.refresh_from_db(fields=["version"])
    _record(session, "change", **_recordable(fields))
    relay.state_changed(session, reload="branch" in fields or "item" in fields)
    return session


def require_presenter(request, session: LiveSession) -> None:
    """One presenter at a time: another instructor takes over first."""
    if not session.running:
        raise ServiceError("This live session has ended", field="live", status=409)
    if session.presenter_id != getattr(access.user_of(request), "pk", None):
        message = f"{session.presenter.get_username()} presents now: take over to present"
        raise ServiceError(message, field="presenter", status=409)


def take_over(request, session: LiveSession) -> LiveSession:
    """A co-instructor (or the instructor) becomes the one presenter."""
    if not session.running:
        raise ServiceError("This live session has ended", field="live", status=409)
    user = access.user_of(request)
    if session.presenter_id != user.pk:
        session.presenter = user
        session.version += 1
        session.save(update_fields=["presenter", "version"])
        _record(session, "presenter", presenter=user.get_username())
        relay.presenter_changed(session)
    return session


def spotlight(request, session: LiveSession, participant, names: bool = False) -> LiveSession:
    """Show one participant's own branch to everyone (None: nobody's); their name only when
    the presenter says so."""
    require_presenter(request, session)
    seat = None
    if participant is not None:
        seat = session.participants.filter(pk=participant, branch__isnull=False).first()
        if seat is None:
            raise ServiceError("Nobody in this session has such a branch", "participant", 404)
    session.spotlight, session.spotlight_names = seat, bool(names)
    session.version += 1
    session.save(update_fields=["spotlight", "spotlight_names", "version"])
    _record(session, "spotlight", participant=seat.pk if seat else None, names=bool(names))
    relay.spotlight_changed(session)
    return session


def _checked_changes(session: LiveSession, changes: dict) -> dict:
    fields: dict = {}
    if changes.get("item") is not None:
        item = lessons.get_item(session.lesson, changes["item"])
        fields.update(item=item, exploration=item.exploration, branch=item.exploration.root)
    if changes.get("branch") is not None:
        fields["branch"] = _branch_of_lesson(session, changes["branch"])
        fields["exploration"] = fields["branch"].exploration
        if fields["exploration"].pk != (fields.get("item") or session.item).exploration_id:
            fields["item"] = session.lesson.items.filter(exploration=fields["exploration"]).first()
    if "panel" in changes:
        fields["panel"] = _checked_panel(changes["panel"])
    if "selection" in changes:
        fields["selection"] = _checked_selection(changes["selection"])
    if "preview" in changes:
        fields["preview"] = _checked_preview(changes["preview"])
    if changes.get("pacing") is not None:
        if changes["pacing"] not in LiveSession.Pacing.values:
            raise ServiceError("Pacing is instructor or student", field="pacing")
        fields["pacing"] = changes["pacing"]
    return fields


def _branch_of_lesson(session: LiveSession, branch_id) -> Branch:
    try:
        branch = Branch.objects.select_related("exploration").get(pk=branch_id)
    except (Branch.DoesNotExist, ValueError, TypeError, ValidationError):
        raise ServiceError("No such branch", field="branch", status=404) from None
    if not session.lesson.items.filter(exploration_id=branch.exploration_id).exists():
        raise ServiceError("That branch is not in this lesson", field="branch")
    return branch


def _checked_panel(panel) -> dict:
    if panel in (None, {}):
        return {}
    if not isinstance(panel, dict) or panel.get("name") not in PANELS:
        raise ServiceError(f"panel.name is one of {', '.join(PANELS)}", field="panel.name")
    choices = panel.get("choices", {})
    if not isinstance(choices, dict) or len(choices) > MAX_CHOICES:
        raise ServiceError(f"panel.choices: at most {MAX_CHOICES} fields", "panel.choices")
    for name, value in choices.items():
        if not isinstance(value, str | int | float | bool) or len(str(value)) > 200:
            raise ServiceError("panel.choices hold short values only", f"panel.choices.{name}")
    return {"name": panel["name"], "choices": {str(k)[:50]: v for k, v in choices.items()}}


def _checked_selection(selection) -> list[int]:
    if selection is None:
        return []
    if not isinstance(selection, list) or len(selection) > MAX_SELECTION:
        raise ServiceError(f"selection is a list of at most {MAX_SELECTION} indexes", "selection")
    if not all(isinstance(index, int) and index >= 0 for index in selection):
        raise ServiceError("selection holds token indexes (0 or more)", field="selection")
    return selection


def _checked_preview(preview) -> dict:
    if preview is None:
        return {}
    if not isinstance(preview, dict):
        raise ServiceError("preview is an object of slider values", field="preview")
    cleaned = {}
    for name, value in preview.items():
        if name not in reading.SLIDER_NAMES:
            raise ServiceError(f"preview has no field {name}", field=f"preview.{name}")
        try:
            cleaned[name] = float(value)
        except (TypeError, ValueError):
            raise ServiceError("a slider value is a number", field=f"preview.{name}") from None
    return cleaned


def _recordable(fields: dict) -> dict:
    return {
        name: (value.pk if hasattr(value, "pk") else value)
        for name, value in fields.items()
        if name != "exploration"
    } | ({"branch": str(fields["branch"].pk)} if "branch" in fields else {})


def _record(session: LiveSession, kind: str, **data) -> None:
    data = {key: (str(value) if hasattr(value, "hex") else value) for key, value in data.items()}
    LiveEvent.objects.create(session=session, version=session.version, kind=kind, data=data)


def end(request, session: LiveSession) -> LiveSession:
    if session.running:
        session.ended_at = timezone.now()
        session.save(update_fields=["ended_at"])
        _record(session, "ended")
        audit.record(request, "live.end", session.lesson, f"Ended the live session {session}")
        relay.ended(session)
    return session


def past_sessions(sessions: list[LiveSession]) -> list[dict]:
    """The record of ended sessions: when, who presented, who attended, how many changes."""
    ended = [one for one in sessions if not one.running]
    return [
        {
            "session": one,
            "attended": [seat.name for seat in one.participants.all()],
            "changes": one.events.count(),
        }
        for one in ended
    ]
