"""A branch's verbs (step, undo, generate, stop, fork, rename, delete) and its panels as the
database has them now (the branch, the Branches tree). Each answers with the branch panel
(htmx) or the whole page (no JavaScript)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from inspector import broadcast
from inspector.api.errors import first_error
from inspector.compute import limits
from inspector.errors import ServiceError
from inspector.explorations import services as explorations
from inspector.explorations.pages import (
    PAGE,
    branch_context,
    branch_panel,
    branch_url,
    go_to,
    usable_branch,
    viewer_of,
)
from inspector.explorations.serializers import StepRequestSerializer, TurnRequestSerializer
from inspector.models import Branch

ASKED_HEADER = "TokenLens-Step"  # a pushed step's id (static/tokenlens/app.js)


@require_POST
def branch_step(request: HttpRequest, branch_id) -> HttpResponse:
    """One step (sample, greedy or force), the form checked by the API's serializer."""
    return _step_from_form(request, usable_branch(request, branch_id), StepRequestSerializer)


@require_POST
def branch_turn(request: HttpRequest, branch_id) -> HttpResponse:
    """A user's turn of a conversation (conversation.py), checked like the API's."""
    return _step_from_form(request, usable_branch(request, branch_id), TurnRequestSerializer)


def _step_from_form(request: HttpRequest, branch: Branch, serializer_class) -> HttpResponse:
    """Validate the form, then step: pushed (the page's websocket hears the outcome, nothing
    waits here) when the page has a socket, else waited for."""
    reply_to = request.POST.get("reply_to", "")
    pushed = bool(request.htmx) and broadcast.is_reply_channel(reply_to)
    asked = ""

    def step():
        nonlocal asked
        serializer = serializer_class(data=request.POST)
        if not serializer.is_valid():
            raise ServiceError(*reversed(first_error(serializer.errors)))
        limits.check_generation_rate(request)
        data = serializer.validated_data
        mode = data.get("mode", "turn")
        token_id, text = data.get("token_id"), data.get("text") or None
        if pushed:
            asked = explorations.push_step(branch, mode, token_id, text, reply_to).asked
        elif mode == "turn":
            explorations.add_turn(branch, text)
        else:
            explorations.step(branch, mode, token_id, text)

    try:
        step()
    except ServiceError as error:
        return branch_panel(request, branch, error)
    if pushed:
        response = branch_panel(request, branch, stepping=True, status=202)
        response[ASKED_HEADER] = asked  # a page that already heard the answer keeps it
        return response
    return branch_panel(request, branch)


def _after(request: HttpRequest, branch: Branch, action) -> HttpResponse:
    """Run an action on the branch, then show the branch (with the error, if any)."""
    try:
        action()
    except ServiceError as error:
        return branch_panel(request, branch, error)
    return branch_panel(request, branch)


@require_POST
def branch_undo(request: HttpRequest, branch_id) -> HttpResponse:
    branch = usable_branch(request, branch_id)
    return _after(request, branch, lambda: explorations.undo(branch))


@require_POST
def branch_generate(request: HttpRequest, branch_id) -> HttpResponse:
    branch = usable_branch(request, branch_id)
    delay_ms = request.POST.get("delay_ms", "0")

    def generate():
        limits.check_generation_rate(request)
        explorations.start_generation(branch, delay_ms)

    return _after(request, branch, generate)


@require_POST
def branch_stop(request: HttpRequest, branch_id) -> HttpResponse:
    branch = usable_branch(request, branch_id)
    explorations.stop_generation(branch)
    return branch_panel(request, branch)


@require_POST
def branch_fork(request: HttpRequest, branch_id) -> HttpResponse:
    branch = usable_branch(request, branch_id)
    try:
        at_index, token_id = int(request.POST["at_index"]), int(request.POST["token_id"])
        limits.check_generation_rate(request)
        child = explorations.fork(branch, at_index, token_id)
    except (KeyError, ValueError):
        return branch_panel(request, branch, ServiceError("Choose a token to branch with"))
    except ServiceError as error:
        return branch_panel(request, branch, error)
    return go_to(request, branch_url(child))


@require_POST
def branch_rename(request: HttpRequest, branch_id) -> HttpResponse:
    branch = usable_branch(request, branch_id)
    label = request.POST.get("label", "").strip()[:100]
    if label:
        Branch.objects.filter(pk=branch.pk).update(label=label)
    return go_to(request, branch_url(branch))


@require_POST
def branch_delete(request: HttpRequest, branch_id) -> HttpResponse:
    branch = usable_branch(request, branch_id)
    try:
        explorations.delete_branch(branch)
    except ServiceError as error:
        return branch_panel(request, branch, error)
    return go_to(request, reverse("exploration", args=[branch.exploration_id]))


@require_GET
def branch_view(request: HttpRequest, branch_id) -> HttpResponse:
    """The branch panel as the database has it now (polling fallback, websocket reconnects)."""
    branch = usable_branch(request, branch_id, "view")
    context = branch_context(branch, viewer_of(request, branch))
    if request.GET.get("was_generating") and not context["generating"]:
        context["notice"] = explorations.generation_outcome(branch)
    return render(request, f"{PAGE}#branch-view", context)


@require_GET
def branch_tree(request: HttpRequest, branch_id) -> HttpResponse:
    """The Branches panel as the database has it now, with `branch` as the current one (the
    page re-reads it when a branch ends or goes on again)."""
    branch = usable_branch(request, branch_id, "view")
    context = {
        "access": viewer_of(request, branch),
        "exploration": branch.exploration,
        "branch": branch,
        "tree": explorations.branch_tree(branch.exploration),
    }
    return render(request, f"{PAGE}#branch-tree", context)
