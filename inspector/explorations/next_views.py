"""The next-token panel: the next token's distribution under the sliders (nothing is
generated), keeping the sliders for the next steps, and a past step's alternatives."""

from __future__ import annotations

import json

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from inspector import broadcast
from inspector.accounts import access
from inspector.api.errors import first_error
from inspector.api.serializers import SamplingParamsSerializer
from inspector.errors import ServiceError
from inspector.explorations import services as explorations
from inspector.explorations.forms import SLIDERS
from inspector.explorations.pages import PAGE, branch_url, usable_branch, viewer_of


def _slider_params(query) -> dict:
    """Sampling params from the sliders, validated as the API validates them."""
    names = [name for name, *_ in SLIDERS] + ["seed"]
    raw = {name: query[name] for name in names if query.get(name, "") != ""}
    serializer = SamplingParamsSerializer(data=raw)
    if not serializer.is_valid():
        raise ServiceError(*reversed(first_error(serializer.errors)))
    return serializer.validated_data


def _whole_number(text: str, field: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ServiceError(f"{field} must be a whole number, not {text[:20]!r}", field) from None


@require_GET
def branch_next(request: HttpRequest, branch_id) -> HttpResponse:
    """The next token's distribution under the sliders' settings; nothing is generated."""
    branch = usable_branch(request, branch_id, "view")
    if explorations.is_generating(branch):
        return render(request, f"{PAGE}#next-distribution", {"generating": True})
    try:
        params = {**branch.exploration.params, **_slider_params(request.GET)}
        top_n = _whole_number(request.GET.get("top_n", "20"), "top_n")
        distribution = explorations.next_distribution(branch, params, top_n)
    except ServiceError as error:
        return render(request, f"{PAGE}#next-distribution", {"error": error})
    viewer = viewer_of(request, branch)
    if request.GET.get("live") and viewer.read_only:  # a live follower's page: breaks away
        viewer = access.LIVE_FOLLOWER
    if viewer.change:  # a presenter's preview is the live class's too
        broadcast.tell(
            broadcast.preview_shown,
            request=request,
            branch=branch,
            distribution=distribution,
            params=params,
        )
    context = {"distribution": distribution, "branch": branch, "access": viewer}
    return render(request, f"{PAGE}#next-distribution", context)


@require_POST
def exploration_params(request: HttpRequest, branch_id) -> HttpResponse:
    """Keep the sliders' settings for the next steps of this exploration."""
    branch = usable_branch(request, branch_id)
    try:
        params = {**branch.exploration.params, **_slider_params(request.POST)}
    except ServiceError as error:
        return render(request, f"{PAGE}#next-distribution", {"error": error}, status=422)
    explorations.set_params(branch.exploration, params)
    if request.htmx:  # the page stays; it says what the next steps use
        context = {"params": params, "kept_json": json.dumps(params)}
        return render(request, f"{PAGE}#params-kept", context)
    return redirect(branch_url(branch))


@require_GET
def step_alternatives(request: HttpRequest, branch_id, index: int) -> HttpResponse:
    branch = usable_branch(request, branch_id, "view")
    steps = branch.sequence()
    if index >= len(steps):
        raise Http404("This branch has no token at that position")
    step = steps[index]
    candidates = list(step.distribution["tokens"])
    chosen = step.distribution.get("chosen")
    if chosen and all(candidate["id"] != step.token_id for candidate in candidates):
        candidates.append(chosen)  # a sampled token from outside the top-N
    viewer = viewer_of(request, branch)
    context = {"branch": branch, "step": step, "candidates": candidates, "access": viewer}
    return render(request, f"{PAGE}#alternatives", context)
