"""The exploration pages: the list, a new exploration or example, one exploration, two of its
branches compared, its prompt as tokens. Thin views over inspector.explorations.services (the
same use-cases as the API); the branch verbs are in branch_views, the next-token panel in
next_views."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from inspector.api.errors import first_error
from inspector.compute import limits
from inspector.errors import ServiceError
from inspector.explorations import charts
from inspector.explorations import services as explorations
from inspector.explorations.examples import EXAMPLES
from inspector.explorations.forms import ExplorationForm
from inspector.explorations.pages import (
    LIST,
    PAGE,
    go_to,
    usable_branch,
    usable_exploration,
    whole_page,
)
from inspector.explorations.serializers import ExplorationSerializer


def _list(request: HttpRequest, form: ExplorationForm, status: int = 200) -> HttpResponse:
    mine = explorations.explorations_for(request)
    return render(request, LIST, {"form": form, "explorations": mine}, status=status)


@require_GET
def exploration_list(request: HttpRequest) -> HttpResponse:
    return _list(request, ExplorationForm())


@require_POST
def exploration_create(request: HttpRequest) -> HttpResponse:
    form = ExplorationForm(request.POST)
    if form.is_valid():
        serializer = ExplorationSerializer(data=form.payload())
        if serializer.is_valid():
            try:
                data = dict(serializer.validated_data)
                exploration = explorations.create_exploration(request, data)
                return go_to(request, reverse("exploration", args=[exploration.pk]))
            except ServiceError as error:
                form.add_api_error(error.field, error.message)
        else:
            form.add_api_error(*first_error(serializer.errors))
    status = 422 if request.htmx else 400
    if request.htmx:
        return render(request, f"{LIST}#exploration-form", {"form": form}, status=status)
    return _list(request, form, status=status)


@require_POST
def example_start(request: HttpRequest, key: str) -> HttpResponse:
    """A first visit's one click: an example exploration, already writing (¼ s a token)."""
    example = EXAMPLES.get(key)
    if example is None:
        raise Http404("No such example")
    serializer = ExplorationSerializer(data=example.request())
    serializer.is_valid(raise_exception=True)
    try:
        exploration = explorations.create_exploration(request, dict(serializer.validated_data))
        limits.check_generation_rate(request)
        explorations.start_generation(exploration.root, 250)
    except ServiceError as error:  # no worker, over budget: said beside the examples
        status = 422 if request.htmx else error.status
        return render(request, "inspector/home.html#example-error", {"error": error}, status=status)
    url = reverse("exploration", args=[exploration.pk])
    if request.POST.get("tour"):
        url += "?tour=1"
    return go_to(request, url)


@require_GET
def exploration_page(request: HttpRequest, exploration_id) -> HttpResponse:
    exploration = usable_exploration(request, exploration_id)
    branch_id = request.GET.get("branch")
    branch = usable_branch(request, branch_id, "view") if branch_id else exploration.root
    if branch.exploration_id != exploration.pk:
        raise Http404("That branch belongs to another exploration")
    return whole_page(request, branch)


@require_GET
def branch_compare(request: HttpRequest, exploration_id) -> HttpResponse:
    """Two branches side by side from where they diverge, with their log-probabilities."""
    exploration = usable_exploration(request, exploration_id)
    sides = []
    for key in ("a", "b"):
        branch_id = request.GET.get(key)
        branch = usable_branch(request, branch_id, "view") if branch_id else exploration.root
        if branch.exploration_id != exploration.pk:
            raise Http404("That branch belongs to another exploration")
        sides.append((branch, branch.sequence(with_candidates=False)))
    shared = charts.divergence(sides[0][1], sides[1][1])
    columns = [
        {
            "branch": branch,
            "after": steps[shared:],
            "score": charts.sequence_score(steps),
            "score_after": charts.sequence_score(steps[shared:]),
        }
        for branch, steps in sides
    ]
    context = {
        "exploration": exploration,
        "shared_steps": sides[0][1][:shared],
        "columns": columns,
        "branches": exploration.branches.all(),
    }
    return render(request, "inspector/compare.html", context)


@require_POST
def exploration_rename(request: HttpRequest, exploration_id) -> HttpResponse:
    exploration = usable_exploration(request, exploration_id, "own")
    explorations.rename(exploration, request.POST.get("title", ""))
    return go_to(request, reverse("exploration", args=[exploration.pk]))


@require_POST
def exploration_delete(request: HttpRequest, exploration_id) -> HttpResponse:
    exploration = usable_exploration(request, exploration_id, "own")
    explorations.delete_exploration(request, exploration)
    return go_to(request, reverse("explorations"))


@require_GET
def prompt_tokens(request: HttpRequest, exploration_id) -> HttpResponse:
    """The prompt as the model reads it (chat template applied), token by token."""
    exploration = usable_exploration(request, exploration_id)
    try:
        tokens = explorations.prompt_tokens(exploration)
    except ServiceError as error:
        return render(request, f"{PAGE}#prompt-tokens", {"error": error})
    return render(request, f"{PAGE}#prompt-tokens", {"tokenization": tokens})
