"""Live session pages: join by code, follow, break away and come back; start and end (thin
views over inspector.live.services)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from inspector.api.errors import first_error
from inspector.errors import ServiceError, page_refusal
from inspector.explorations import charts
from inspector.explorations.pages import DEFAULTS, inside_context, whole_page
from inspector.explorations.serializers import StepRequestSerializer
from inspector.live import following, polls, reading, relay
from inspector.live import services as live

PAGE = "inspector/live.html"


@require_GET
def join_form(request: HttpRequest) -> HttpResponse:
    """/live/?code=…: the box a class types the code into."""
    code = request.GET.get("code", "")
    if code.strip():
        return redirect("live-join", code=code.strip().upper())
    return render(request, PAGE, {"ask_code": True})


@require_GET
def follow(request: HttpRequest, code: str) -> HttpResponse:
    """Join (once) and follow: the class's text, panel and sliders as they are now. An
    instructor of the lesson goes to the presenter's page instead."""
    try:
        session, seat = live.join(request, code)
    except ServiceError as error:
        return render(request, PAGE, {"ask_code": True, "error": error, "code": code}, status=404)
    if seat is None:
        return redirect(presenter_url(session))
    if not seat.following:
        following.back_to_class(request, session)
    return render(request, PAGE, _follower_context(session, seat))


def presenter_url(session) -> str:
    url = reverse("exploration", args=[session.exploration_id])
    return f"{url}?branch={session.branch_id}" if session.branch_id else url


def _follower_context(session, seat) -> dict:
    branch = session.branch
    steps = branch.sequence(with_candidates=False) if branch else []
    exploration = branch.exploration if branch else None
    preview = {**DEFAULTS, **(exploration.params if exploration else {}), **session.preview}
    return {
        "session": session,
        "seat": seat,
        "access": relay.FOLLOWER,
        "exploration": exploration,
        "branch": branch,
        "steps": steps,
        "surprisal": charts.surprisal(steps),
        "entropy": charts.entropy_line(steps),
        "state_html": relay.state_html(session),
        "preview": {name: preview[name] for name in reading.SLIDER_NAMES if name in preview},
        "settings": reading.slider_rows(preview),
        "inside": inside_context(exploration) if exploration else None,
        "poll_html": polls.follower_box_of(session),
        "spotlight_html": relay.spotlight_html(session),
    }


@require_POST
def break_away(request: HttpRequest, code: str) -> HttpResponse:
    """Try it myself (or Step, Greedy step, Choose a candidate): the class's text in my own
    workspace, to step on from; a step asked for is the first one taken there."""
    session = _joined(request, code)
    first_step = None
    if request.POST.get("mode"):
        serializer = StepRequestSerializer(data=request.POST)
        if not serializer.is_valid():  # nothing is copied for a step that cannot be taken
            raise _conflict(ServiceError(first_error(serializer.errors)[1]))
        first_step = serializer.validated_data
    try:
        exploration = following.break_away(request, session)
    except ServiceError as error:
        raise page_refusal(error) if error.status in (403, 404) else _conflict(error) from None
    if first_step:
        try:
            following.first_step_away(request, exploration.root, first_step)
        except ServiceError as error:  # the copy is theirs; the page says why it did not step
            return whole_page(request, exploration.root, status=error.status, error=error)
    return redirect("exploration", exploration_id=exploration.pk)


@require_POST
def start(request: HttpRequest, lesson_id) -> HttpResponse:
    try:
        session = live.start(request, lesson_id, request.POST.get("pacing") or "instructor")
    except ServiceError as error:
        raise page_refusal(error) if error.status in (403, 404) else _conflict(error) from None
    return redirect(presenter_url(session))


@require_GET
def record(request: HttpRequest, session_id) -> HttpResponse:
    """An (ended or running) session's record, for the lesson's instructors: who attended, the
    presenter's path and every poll with its answers."""
    try:
        session = live.get_session(request, session_id, "present")
    except ServiceError as error:
        raise page_refusal(error) from None
    context = {
        "session": session,
        "record": True,
        "events": list(session.events.all()),
        "attended": list(session.participants.all()),
        "polls": [(poll, polls.results(poll)) for poll in session.polls.all()],
    }
    return render(request, "inspector/live_record.html", context)


@require_POST
def poll_open(request: HttpRequest, session_id) -> HttpResponse:
    """The presenter asks the class for the next token (htmx: the results box comes back)."""
    try:
        poll = polls.open_poll(request, live.get_session(request, session_id, "present"))
    except ServiceError as error:
        if error.status in (403, 404):
            raise page_refusal(error) from None
        return render(request, f"{PAGE}#poll-mine", {"error": error}, status=422)
    if not request.htmx:
        return redirect(presenter_url(poll.session))
    return HttpResponse(polls.presenter_box(poll, oob=False))


@require_POST
def poll_answer(request: HttpRequest, code: str) -> HttpResponse:
    session = _joined(request, code)
    try:
        given = polls.answer(request, session, request.POST.get("text", ""))
    except ServiceError as error:
        status = 422 if request.htmx else error.status
        return render(request, f"{PAGE}#poll-mine", {"error": error}, status=status)
    if not request.htmx:
        return redirect("live-join", code=session.code)
    return render(request, f"{PAGE}#poll-mine", {"given": given})


@require_POST
def take_over(request: HttpRequest, session_id) -> HttpResponse:
    try:
        session = live.take_over(request, live.get_session(request, session_id, "present"))
    except ServiceError as error:
        raise page_refusal(error) if error.status in (403, 404) else _conflict(error) from None
    return redirect(presenter_url(session))


@require_POST
def end(request: HttpRequest, session_id) -> HttpResponse:
    try:
        session = live.end(request, live.get_session(request, session_id, "present"))
    except ServiceError as error:
        raise page_refusal(error) from None
    return redirect("lesson", lesson_id=session.lesson_id)


def _joined(request: HttpRequest, code: str):
    try:
        session, _seat = live.join(request, code)
    except ServiceError as error:
        raise page_refusal(error) from None
    return session


def _conflict(error: ServiceError) -> Exception:
    from django.core.exceptions import BadRequest

    return BadRequest(error.message)
