"""{% live_bar %}: on an exploration page, the presenter's live controls or a student's way back
to the class (nothing otherwise)."""

from django import template
from django.template.loader import render_to_string

from inspector.accounts import access
from inspector.live import services as live

register = template.Library()


@register.simple_tag(takes_context=True)
def live_bar(context, exploration, branch) -> str:
    request = context.get("request")
    if request is None or not hasattr(request, "session"):
        return ""
    session = live.presenting(request, exploration)
    if session is not None:
        bar = {"session": session, "branch": branch}
        return render_to_string("inspector/partials/live_presenter.html", bar, request=request)
    session = live.broken_away_to(request, exploration)
    if session is not None:
        back = {"session": session}
        return render_to_string("inspector/partials/live_return.html", back, request=request)
    return ""


@register.simple_tag(takes_context=True)
def live_lesson_box(context, lesson) -> str:
    """On a lesson page: for its instructors, present it live (or go back to the running
    session) and the record of past sessions."""
    request = context.get("request")
    if request is None or not access.may_present(access.user_of(request), lesson):
        return ""
    sessions = list(lesson.live_sessions.select_related("presenter")[:20])
    box = {
        "lesson": lesson,
        "running": next((one for one in sessions if one.running), None),
        "past": live.past_sessions(sessions),
    }
    return render_to_string("inspector/partials/live_lesson.html", box, request=request)
