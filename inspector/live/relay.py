"""Pushing a live session's changes: each event is rendered once per audience (followers,
presenters) and sent to that audience's group; the consumers only forward the text, so thirty
followers cost one render and no query each."""

from __future__ import annotations

import json
import logging

from django.db.models import Q
from django.dispatch import receiver
from django.template.loader import render_to_string

from inspector import broadcast
from inspector.accounts.access import LIVE_FOLLOWER
from inspector.explorations import charts
from inspector.live import reading
from inspector.models import Branch, LiveSession, Step

logger = logging.getLogger(__name__)
PUSH = "live.push"
END = "live.end"
PAGE = "inspector/live.html"
TOKENS = "inspector/exploration.html"
FOLLOWER = LIVE_FOLLOWER  # what a follower may do with what the class sees


def followers_group(session_id) -> str:
    return f"live.{session_id}.followers"


def presenters_group(session_id) -> str:
    return f"live.{session_id}.presenters"


def _push(group: str, html: str, kind: str = PUSH) -> None:
    try:
        broadcast.deliver("group_send", group, {"type": kind, "html": html})
    except Exception:  # a reload (or reconnect) shows the state: it is saved
        logger.warning("Could not push to %s", group, exc_info=True)


def push_followers(session: LiveSession, html: str) -> None:
    _push(followers_group(session.pk), html)


def push_presenters(session: LiveSession, html: str) -> None:
    _push(presenters_group(session.pk), html)


# --- what followers see -----------------------------------------------------------------------


def state_html(session: LiveSession, reload: bool = False) -> str:
    """The state element a follower's page applies (branch, panel, selection, sliders)."""
    state = {
        "version": session.version,
        "exploration": str(session.exploration_id) if session.exploration_id else None,
        "branch": str(session.branch_id) if session.branch_id else None,
        "panel": session.panel,
        "selection": session.selection,
        "preview": session.preview,
        "pacing": session.pacing,
        "presenter": session.presenter.get_username(),
        "length": session.branch.length if session.branch_id else 0,
        "reload": reload,
    }
    return render_to_string(f"{PAGE}#live-state", {"state_json": json.dumps(state), "oob": True})


def follower_tokens(branch: Branch, from_index: int | None = None) -> str:
    """The branch's tokens as followers see them: only the new ones from `from_index` (swapped
    in where the page's list ends), or all of them with the charts, and what it is doing."""
    if from_index is not None:
        steps = list(
            Step.objects.filter(branch=branch, index__gte=from_index)
            .defer("distribution", "params")
            .order_by("index")
        )
        if steps:
            context = {
                "branch": branch,
                "steps": steps,
                "first_index": from_index,
                "next_index": steps[-1].index + 1,
            }
            return render_to_string(f"{TOKENS}#new-tokens", context) + _activity(branch)
    steps = branch.sequence(with_candidates=False)
    context = {
        "access": FOLLOWER,
        "exploration": branch.exploration,
        "branch": branch,
        "steps": steps,
        "surprisal": charts.surprisal(steps),
        "entropy": charts.entropy_line(steps),
        "oob": True,
    }
    return render_to_string(f"{TOKENS}#tokens", context) + _activity(branch)


def _activity(branch: Branch, notice: str = "") -> str:
    from inspector.explorations.services import is_generating

    context = {"branch": branch, "generating": is_generating(branch), "notice": notice}
    return render_to_string(f"{PAGE}#activity", {**context, "oob": True})


def state_changed(session: LiveSession, reload: bool = False) -> None:
    _push(followers_group(session.pk), state_html(session, reload))


def spotlight_html(session: LiveSession) -> str:
    """The spotlit participant's text (coloured by probability), named only if shown."""
    seat = session.spotlight
    context = {"seat": seat, "oob": True, "names": session.spotlight_names}
    if seat is not None and seat.branch_id:
        context["steps"] = seat.branch.sequence(with_candidates=False)
        context["exploration"] = seat.branch.exploration
    return render_to_string(f"{PAGE}#spotlight", context)


def spotlight_changed(session: LiveSession) -> None:
    html = spotlight_html(session)
    _push(followers_group(session.pk), html)
    _push(presenters_group(session.pk), html)
    class_changed(session)


def presenter_changed(session: LiveSession) -> None:
    """A hand-off: the followers' bar names the new presenter; the instructors' pages reload
    their bar (only the presenter's page drives the class)."""
    name = session.presenter.get_username()
    follower = render_to_string(f"{PAGE}#presenter-name", {"name": name, "oob": True})
    _push(followers_group(session.pk), follower + state_html(session))
    bar = render_to_string(f"{PAGE}#handed-off", {"name": name, "session": session})
    _push(presenters_group(session.pk), bar)


def class_changed(session: LiveSession) -> None:
    """The instructors' side panel: who follows, who broke away and where they are."""
    context = {"session": session, "rows": reading.class_view(session), "oob": True}
    _push(presenters_group(session.pk), render_to_string(f"{PAGE}#class-panel", context))


def ended(session: LiveSession) -> None:
    html = render_to_string(f"{PAGE}#ended", {"session": session})
    for group in (followers_group(session.pk), presenters_group(session.pk)):
        _push(group, html, END)


def _running_on(branch_id) -> list[LiveSession]:
    return list(LiveSession.objects.filter(ended_at__isnull=True, branch_id=branch_id))


# --- what the exploration code tells (inspector.broadcast's signals) ---------------------------


@receiver(broadcast.tokens_changed)
def _tokens_changed(exploration_id, branch_id, from_index, **_):
    """The class's branch went on (its followers get the new tokens), or the spotlit student
    stepped (everyone sees their new text). One query when no session has this branch: every
    step anyone takes comes through here."""
    sessions = list(
        LiveSession.objects.select_related("spotlight__branch__exploration").filter(
            Q(branch_id=branch_id) | Q(spotlight__branch_id=branch_id), ended_at__isnull=True
        )
    )
    key = str(branch_id)  # the worker tells it as text, the web process as a UUID
    followed = [session for session in sessions if str(session.branch_id) == key]
    if followed:
        branch = Branch.objects.select_related("exploration").get(pk=branch_id)
        html = follower_tokens(branch, from_index)
        for session in followed:
            _push(followers_group(session.pk), html)
    for session in sessions:
        if session.spotlight_id and str(session.spotlight.branch_id) == key:
            spotlight_changed(session)


@receiver(broadcast.generation_finished)
def _generation_finished(exploration_id, branch_id, reason, message, **_):
    sessions = _running_on(branch_id)
    if not sessions:
        return
    branch = Branch.objects.select_related("exploration").get(pk=branch_id)
    notice = {"stopped": "The presenter stopped the generation.", "error": message}.get(reason, "")
    html = follower_tokens(branch) + _activity(branch, notice)
    for session in sessions:
        _push(followers_group(session.pk), html)
        class_changed(session)


@receiver(broadcast.preview_shown)
def _preview_shown(request, branch, distribution, params, **_):
    """The presenter's next-token panel, shown to the class as it is (no second computation)."""
    from inspector.accounts.access import may_present, user_of

    user = user_of(request)
    sessions = [
        session
        for session in LiveSession.objects.select_related("lesson").filter(
            ended_at__isnull=True, branch=branch
        )
        if may_present(user, session.lesson) and session.presenter_id == user.pk
    ]
    if not sessions:
        return
    sliders = {name: params[name] for name in reading.SLIDER_NAMES if name in params}
    context = {"distribution": distribution, "branch": branch, "access": FOLLOWER}
    table = render_to_string(f"{TOKENS}#next-distribution", context)
    rows = reading.slider_rows(sliders)
    html = render_to_string(f"{PAGE}#preview", {"table": table, "settings": rows, "oob": True})
    for session in sessions:
        LiveSession.objects.filter(pk=session.pk).update(preview=sliders)
        _push(followers_group(session.pk), html)
